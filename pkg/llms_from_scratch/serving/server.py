"""A small OpenAI-compatible HTTP server: ``/v1/chat/completions`` (plain and SSE streaming) and ``/v1/models``.

Standard library only (``http.server``). Connections are handled on threads; generation runs one request at
a time behind a lock, so concurrent requests queue instead of competing for the cores or the model.
Malformed requests get 4xx responses with OpenAI's error shape ``{"error": {"message", "type", ...}}``.
Ollama's ``POST /api/chat`` and ``GET /api/tags`` are answered too (see :mod:`.ollama`).
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from . import ollama  # Ollama's /api routes, translated onto the same service
from .chat_service import ChatService, RequestError
from .http_json import read_json_body, send_json


def make_handler(service: ChatService) -> type[BaseHTTPRequestHandler]:

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "llms-from-scratch"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # no access log: the serve command prints its address once and stays quiet per request

        def _json(self, status: int, payload: dict) -> None:
            send_json(self, status, payload)

        def _error(self, exc: RequestError) -> None:
            kind = "invalid_request_error" if exc.status < 500 else "server_error"
            self._json(exc.status, {"error": {"message": str(exc), "type": kind, "param": exc.param,
                                              "code": exc.code}})

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if ollama.handles("GET", self.path):
                ollama.answer(self, service)
            elif self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [
                    {"id": service.name, "object": "model", "created": service.created, "owned_by": "llms-from-scratch"}
                ]})
            elif self.path.rstrip("/") == f"/v1/models/{service.name}":
                self._json(200, {"id": service.name, "object": "model", "created": service.created,
                                 "owned_by": "llms-from-scratch"})
            else:
                self._error(RequestError(404, f"no route GET {self.path}"))

        def do_POST(self) -> None:  # noqa: N802
            if ollama.handles("POST", self.path):
                ollama.answer(self, service)
                return
            try:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    raise RequestError(404, f"no route POST {self.path}")
                req = service.parse(read_json_body(self))
            except RequestError as exc:
                self._error(exc)
                return
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            if req["stream"]:
                self._stream(req, completion_id)
            else:
                self._complete(req, completion_id)

        def _complete(self, req: dict, completion_id: str) -> None:
            pieces, tail = [], None
            for item in service.run(req):
                if isinstance(item, tuple):
                    tail = item
                else:
                    pieces.append(item)
            finish, n_prompt, n_out = tail
            self._json(200, {
                "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": service.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                             "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
            })

        def _stream(self, req: dict, completion_id: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            created = int(time.time())

            def event(delta: dict, finish: str | None = None) -> None:
                chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                         "model": service.name, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

            try:
                event({"role": "assistant", "content": ""})
                for item in service.run(req):
                    if isinstance(item, tuple):
                        event({}, item[0])
                    else:
                        event({"content": item})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away; the lock was released when the generator closed

    return Handler


def make_server(model: torch.nn.Module, tokenizer: Any, name: str, host: str = "127.0.0.1",
                port: int = 8000) -> ThreadingHTTPServer:
    """A ready server; call ``serve_forever()`` (port 0 picks a free port: see ``server.server_address``)."""
    service = ChatService(model, tokenizer, name)
    server = ThreadingHTTPServer((host, port), make_handler(service))
    server.daemon_threads = True
    return server
