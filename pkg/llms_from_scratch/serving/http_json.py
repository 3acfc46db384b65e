"""Reading and writing JSON over ``http.server``, shared by the OpenAI and the Ollama routes."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from .chat_service import MAX_BODY, RequestError


def read_json_body(handler: BaseHTTPRequestHandler) -> Any:
    """The request body parsed as JSON; a :class:`RequestError` (4xx) for a bad length or bad JSON.

    The length is checked before anything is read: ``rfile.read(-1)`` would read until the client closes, so a
    negative or non-numeric ``Content-Length`` is refused rather than trusted.
    """
    raw = handler.headers.get("Content-Length") or "0"
    try:
        length = int(raw)
    except ValueError:
        raise RequestError(400, f"Content-Length must be a whole number of bytes, got {raw!r}") from None
    if length < 0:
        raise RequestError(400, f"Content-Length must not be negative, got {length}")
    if length > MAX_BODY:
        raise RequestError(413, f"request body over {MAX_BODY} bytes")
    try:
        return json.loads(handler.rfile.read(length) or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # JSON nested thousands of levels deep
        raise RequestError(400, "the body's JSON is nested too deeply") from None


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    """Answer with ``payload`` as a complete JSON response (the connection stays usable for the next request)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
