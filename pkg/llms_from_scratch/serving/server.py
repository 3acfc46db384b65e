"""An OpenAI-compatible HTTP server: ``/v1/chat/completions`` (plain and SSE streaming) and ``/v1/models``, plus
Ollama's ``POST /api/chat`` and ``GET /api/tags`` (see :mod:`.ollama`).

Built on Starlette (routing, requests, streaming responses) and uvicorn (HTTP/1.1 with h11, an event loop), the
``serve`` extra: ``pip install "llms-from-scratch[serve]"``. What a public server needs on top, and where it lives:

* limits (:class:`~.limits.ServerLimits`): the body size and its deadline (:mod:`.http_json`), the header deadline, the
  header size and the connection cap (:mod:`.protocol`), the queue of waiting generations (:mod:`.jobs`);
* generation on one worker thread, cancelled when its client hangs up (:mod:`.jobs`, :mod:`.replies`);
* an optional API key, sent by clients as ``Authorization: Bearer KEY``;
* every error as JSON in the API's shape, for every method and path: OpenAI's ``{"error": {"message", "type",
  "param", "code"}}``, Ollama's ``{"error": "..."}`` under ``/api/``.

The chat page lives at ``/`` (:mod:`.page`). A chapter 6 classifier is served instead of a chat model by
:func:`make_classifier_server`: ``POST /v1/classify`` (:mod:`.classifier`) and no chat routes. Each model card
says which it is: ``"task": "chat"`` or ``"task": "classify"``.

:func:`make_server` returns a bound :class:`Server`; ``serve_forever()`` runs it until ``shutdown()``.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
import uuid
from typing import Any

import torch
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import ollama  # Ollama's /api routes, translated onto the same service
from .chat_service import ChatService, RequestError
from .classifier import ClassifierService, chat_only_routes, classify_routes
from .http_json import error_payload, error_response, read_json_body, request_error_response
from .jobs import Busy, ClientGone, GenerationWorker
from .limits import DEFAULT_LIMITS, ServerLimits
from .page import PUBLIC_PATHS, page_routes
from .protocol import guarded_protocol
from .replies import collect, stream


def _sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def openai_routes(service: ChatService, worker: GenerationWorker, limits: ServerLimits) -> list[Route]:
    card = {"id": service.name, "object": "model", "created": service.created, "owned_by": "llms-from-scratch",
            "task": "chat"}

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [card]})

    async def model(request: Request) -> Response:
        if request.path_params["model_id"] != service.name:
            raise RequestError(404, f"the model '{request.path_params['model_id']}' does not exist; this server "
                                    f"serves '{service.name}'", "model", "model_not_found")
        return JSONResponse(card)

    async def chat_completions(request: Request) -> Response:
        req = service.parse(await read_json_body(request, limits.max_body, limits.body_timeout))
        job = worker.submit(req)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not req.stream:
            text, (finish, n_prompt, n_out) = await collect(request, job)
            return JSONResponse({
                "id": completion_id, "object": "chat.completion", "created": created, "model": service.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
            })

        def event(delta: dict, finish: str | None = None) -> bytes:
            return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                         "model": service.name, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        def render(item: Any) -> bytes:
            if not isinstance(item, tuple):
                return event({"content": item})
            finish, n_prompt, n_out = item
            if not req.include_usage:
                return event({}, finish)
            # OpenAI's stream_options.include_usage: one more chunk, with no choices and the token counts
            usage = {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}
            return event({}, finish) + _sse({"id": completion_id, "object": "chat.completion.chunk",
                                             "created": created, "model": service.name, "choices": [],
                                             "usage": usage})

        def render_error(exc: Exception) -> bytes:
            status = exc.status if isinstance(exc, RequestError) else 500
            return _sse(error_payload(request.url.path, status, str(exc)))

        return await stream(request, job, render, media_type="text/event-stream", render_error=render_error,
                            leader=event({"role": "assistant", "content": ""}), trailer=b"data: [DONE]\n\n")

    return [Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", model, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"])]


class _StripTrailingSlash:
    """``/v1/models/`` is ``/v1/models``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = {**scope, "path": scope["path"].rstrip("/") or "/"}
        await self.app(scope, receive, send)


class _RequireApiKey:
    """Every route wants ``Authorization: Bearer KEY`` when the server has a key, except the chat page's own
    files (a browser cannot send the header when it opens a page; the page sends it on every API request)."""

    def __init__(self, app: Any, api_key: str | None) -> None:
        self.app, self.key = app, None if api_key is None else api_key.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        public = scope.get("method") in ("GET", "HEAD") and scope.get("path") in PUBLIC_PATHS
        if scope["type"] == "http" and self.key is not None and not public:
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                said = "a wrong API key" if token.strip() else "no API key"
                response = error_response(scope["path"], 401, f"this server needs an API key and the request "
                                          f"sent {said}; send the header 'Authorization: Bearer KEY'",
                                          code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(service: ChatService | ClassifierService, worker: GenerationWorker | None,
               limits: ServerLimits = DEFAULT_LIMITS, api_key: str | None = None) -> Starlette:
    """The ASGI application of both APIs and the chat page (run it with uvicorn; :func:`make_server` does).

    A :class:`ClassifierService` (no ``worker``) gets the classifier's routes instead of the chat routes."""

    async def request_error(request: Request, exc: RequestError) -> Response:
        return request_error_response(request.url.path, exc)

    async def busy(request: Request, exc: Exception) -> Response:
        return error_response(request.url.path, 503, str(exc), code="server_busy", headers={"Retry-After": "1"})

    async def gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=400)  # the client left: nobody reads this

    async def http_error(request: Request, exc: HTTPException) -> Response:  # the router's 404 and 405
        method, path = request.method, request.url.path
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{method} is not allowed on {path}; use {allowed}"
        elif exc.status_code == 404:
            message = f"no route {method} {path}"
        else:
            message = exc.detail
        return error_response(path, exc.status_code, message, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_response(request.url.path, 500, f"internal error: {type(exc).__name__}", code="server_error")

    return Starlette(
        routes=page_routes() + api_routes(service, worker, limits),
        middleware=[Middleware(_StripTrailingSlash), Middleware(_RequireApiKey, api_key=api_key)],
        exception_handlers={RequestError: request_error, Busy: busy, ClientGone: gone, HTTPException: http_error,
                            Exception: server_error},
    )


def api_routes(service: ChatService | ClassifierService, worker: GenerationWorker | None,
               limits: ServerLimits) -> list[Route]:
    """A classifier's routes, or a chat model's (OpenAI's, Ollama's, and an error for ``/v1/classify``)."""
    if isinstance(service, ClassifierService):
        return classify_routes(service, limits)
    if worker is None:
        raise ValueError("a chat service needs its GenerationWorker")
    return openai_routes(service, worker, limits) + ollama.routes(service, worker, limits) \
        + chat_only_routes(service.name)


class Server:
    """A bound server: ``serve_forever()`` runs it (in this thread), ``shutdown()`` from another thread stops it
    and waits until it has stopped, ``server_close()`` releases the socket. ``server_address``: (host, port)."""

    def __init__(self, app: Any, sock: socket.socket, worker: GenerationWorker | None, limits: ServerLimits) -> None:
        self.socket, self.worker = sock, worker
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        config = uvicorn.Config(
            app, http=guarded_protocol(limits.header_timeout, limits.max_connections), loop="asyncio",
            lifespan="off", ws="none", interface="asgi3", log_config=None, access_log=False, proxy_headers=False,
            server_header=False, timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]
            h11_max_incomplete_event_size=limits.max_header_bytes,
            timeout_graceful_shutdown=limits.shutdown_timeout,  # type: ignore[arg-type]
        )
        self._uvicorn = uvicorn.Server(config)
        self._started, self._stopped = threading.Event(), threading.Event()

    def serve_forever(self) -> None:
        self._started.set()
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            if self.worker is not None:
                self.worker.close()
            self._stopped.set()

    def shutdown(self) -> None:
        self._uvicorn.should_exit = True
        if self._started.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.socket.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


def make_server(model: torch.nn.Module, tokenizer: Any, name: str, host: str = "127.0.0.1", port: int = 8000, *,
                api_key: str | None = None, limits: ServerLimits = DEFAULT_LIMITS,
                allow_special_tokens: bool = False) -> Server:
    """A server bound to ``host:port`` (port 0 picks a free port: see ``server.server_address``), ready for
    ``serve_forever()``.

    ``api_key``: clients must send it as ``Authorization: Bearer KEY``. ``allow_special_tokens``: special-token
    strings in messages become control tokens instead of plain text (lets clients write the chat format's
    markup themselves; off by default, as it lets a user forge turns).
    """
    service = ChatService(model, tokenizer, name, limits.max_tokens, allow_special_tokens=allow_special_tokens)
    sock = _bind(host, port)
    worker = GenerationWorker(service, limits.max_waiting)
    return Server(create_app(service, worker, limits, api_key), sock, worker, limits)


def make_classifier_server(classifier: ClassifierService, host: str = "127.0.0.1", port: int = 8000, *,
                           api_key: str | None = None, limits: ServerLimits = DEFAULT_LIMITS) -> Server:
    """A server for a chapter 6 classifier (``POST /v1/classify`` and the page), bound like :func:`make_server`."""
    sock = _bind(host, port)
    return Server(create_app(classifier, None, limits, api_key), sock, None, limits)
