"""JSON over HTTP for both APIs: a strict request-body reader, error responses in each API's shape, and a
watch for clients that hang up.

The body reader trusts nothing the client says about the body: a ``Content-Length`` is required (a chunked body
is refused) and must not exceed the limit, and the body must arrive before a deadline. The HTTP layer below
(uvicorn's h11) has already refused a negative or non-numeric length.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from .chat_service import RequestError


async def read_json_body(request: Request, limit: int, timeout: float) -> Any:
    """The request body parsed as JSON; a :class:`RequestError` (4xx) for a missing, too long, late or bad body."""
    if "transfer-encoding" in request.headers:
        raise RequestError(411, "send the JSON body with a Content-Length header; chunked bodies are not accepted",
                           close=True)
    raw = request.headers.get("content-length")
    if raw is None:
        raise RequestError(411, "a Content-Length header is required: send the request's JSON as its body",
                           close=True)
    if not raw.isdigit():  # h11 refuses these first; checked again because the reader relies on it
        raise RequestError(400, f"Content-Length must be a whole number of bytes, got {raw!r}", close=True)
    if int(raw) > limit:
        raise RequestError(413, f"the request body has {int(raw)} bytes, over the limit of {limit}", close=True)
    try:
        data = await asyncio.wait_for(_read(request, limit), timeout)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the request body did not arrive within {timeout:g} s", close=True) from None
    except ClientDisconnect:
        raise RequestError(400, "the client closed the connection before the body ended", close=True) from None
    try:
        return json.loads(data or b"null")
    except RecursionError:  # JSON nested thousands of levels deep
        raise RequestError(400, "the body's JSON is nested too deeply") from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of more digits than Python converts
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None


async def _read(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # cannot happen with a correct Content-Length; kept as the last line of defence
            raise RequestError(413, f"the request body is over the limit of {limit} bytes", close=True)
    return bytes(body)


def is_ollama(path: str) -> bool:
    """Ollama's routes live under /api/; everything else answers in OpenAI's shape."""
    return path == "/api" or path.startswith("/api/")


def error_payload(path: str, status: int, message: str, param: str | None = None,
                  code: str | None = None) -> dict:
    """``{"error": "..."}`` for Ollama's routes, ``{"error": {"message", "type", "param", "code"}}`` otherwise."""
    if is_ollama(path):
        return {"error": message}
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(path: str, status: int, message: str, param: str | None = None, code: str | None = None, *,
                   close: bool = False, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if close:  # the rest of the request was not read: the connection cannot carry another one
        headers["Connection"] = "close"
    return JSONResponse(error_payload(path, status, message, param, code), status, headers=headers)


def request_error_response(path: str, exc: RequestError) -> Response:
    return error_response(path, exc.status, str(exc), exc.param, exc.code, close=exc.close)


async def disconnected(request: Request) -> None:
    """Return once the client has closed the connection (call after the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
