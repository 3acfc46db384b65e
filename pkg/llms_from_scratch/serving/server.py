"""A small OpenAI-compatible HTTP server: ``/v1/chat/completions`` (plain and SSE streaming) and ``/v1/models``.

Standard library only (``http.server``). Connections are handled on threads; generation runs one request at
a time behind a lock, so concurrent requests queue instead of competing for the cores or the model.
Malformed requests get 4xx responses with OpenAI's error shape ``{"error": {"message", "type", ...}}``.
Ollama's ``POST /api/chat`` and ``GET /api/tags`` are answered too (see :mod:`.ollama`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from .generation import SamplingParams, TextStream, stream

MAX_BODY = 1 << 20  # 1 MiB of JSON is far more than any chat request needs


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def _number(body: dict, key: str, default: Any, kind: type, low: float | None = None, high: float | None = None):
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise RequestError(400, f"'{key}' must be a {kind.__name__}", key)
    if (low is not None and value < low) or (high is not None and value > high):
        raise RequestError(400, f"'{key}' must be between {low} and {high}, got {value}", key)
    return kind(value)


class ChatService:
    """Validates requests and runs generation for one loaded model."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str, max_tokens_limit: int = 2048) -> None:
        if getattr(tokenizer, "chat_format", None) is None:
            raise ValueError(f"{name} has no chat format (a base model); serve an instruct model")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_tokens_limit = max_tokens_limit
        self.lock = threading.Lock()
        self.created = int(time.time())

    def parse(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str):
            raise RequestError(400, "'model' is required", "model")
        if model != self.name:
            raise RequestError(404, f"the model '{model}' does not exist; this server serves '{self.name}'",
                               "model", "model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' must be a non-empty list", "messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                    or not isinstance(m.get("content"), str):
                raise RequestError(400, f"messages[{i}] needs a role (system, user or assistant) and string content",
                                   "messages")
        max_tokens = _number(body, "max_completion_tokens", None, int, 1, self.max_tokens_limit)
        if max_tokens is None:
            max_tokens = _number(body, "max_tokens", 256, int, 1, self.max_tokens_limit)
        stop = body.get("stop")
        if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and
                                                               all(isinstance(s, str) for s in stop))):
            raise RequestError(400, "'stop' must be a string or a list of strings", "stop")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise RequestError(400, "'stream' must be a boolean", "stream")
        sampling = SamplingParams(
            temperature=_number(body, "temperature", 1.0, float, 0.0, 2.0),
            top_p=_number(body, "top_p", 1.0, float, 0.0, 1.0) or None,  # 0 (allowed by OpenAI's API) = no cut
            seed=_number(body, "seed", None, int),
        )
        return {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens,
            "sampling": sampling,
            "stream": bool(body.get("stream", False)),
            "stop": [stop] if isinstance(stop, str) else (stop or []),
        }

    def run(self, req: dict):
        """Yield text pieces; the final item is (finish_reason, prompt_tokens, completion_tokens)."""
        tok = self.tokenizer
        device = next(self.model.parameters()).device
        ids = torch.tensor([tok.encode(tok.apply_chat_template(req["messages"]))], device=device)
        text, emitted, finish, produced = TextStream(tok), "", "length", 0
        with self.lock:  # one generation at a time; other requests wait here
            for token in stream(self.model, ids, req["max_tokens"], req["sampling"], eos_ids=tok.eos_ids):
                token_id = int(token[0])
                if token_id in tok.eos_ids:
                    finish = "stop"
                    break
                produced += 1
                piece = text.push(token_id)
                full = emitted + piece
                hit = [full.index(s) for s in req["stop"] if s in full]
                if hit:
                    piece, finish = full[: min(hit)][len(emitted):], "stop"
                    if piece:
                        yield piece
                    break
                if piece:
                    emitted = full
                    yield piece
        yield finish, ids.shape[1], produced


def make_handler(service: ChatService) -> type[BaseHTTPRequestHandler]:
    from . import ollama  # Ollama's /api routes, translated onto the same service

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "llms-from-scratch"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # no access log: the serve command prints its address once and stays quiet per request

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise RequestError(413, f"request body over {MAX_BODY} bytes")
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise RequestError(400, f"the body is not valid JSON: {exc}") from None
                req = service.parse(body)
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
