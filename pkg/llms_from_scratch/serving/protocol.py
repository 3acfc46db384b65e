"""uvicorn's HTTP/1.1 protocol (h11) with the limits it lacks for a server anyone on the network can reach.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and bounds the size of a request's headers
while they arrive (``h11_max_incomplete_event_size``). The gaps, closed here:

* a deadline for a request's headers: uvicorn's keep-alive timer stops at the first byte, so a client that sends
  half a request line and then nothing holds its connection forever; here the headers must be complete within
  ``header_timeout`` seconds of the connection opening (or of the previous response), else the client gets a 408
  and the connection is closed;
* JSON for the errors uvicorn answers by itself: a malformed request (a negative or non-numeric
  ``Content-Length``, a bad request line, headers over the size limit) gets a 400 in the API's error shape;
* headers that arrive in one piece are not measured by h11 (its limit applies to an incomplete request only);
  here a request line and headers over the limit get a 431 whichever way they came;
* a cap on open connections answered with a JSON 503: uvicorn's ``limit_concurrency`` replies in plain text.

uvicorn's per-request warnings ("Invalid HTTP request received.") are not logged, as the server keeps no
access log; errors (an exception in the application) still are.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .http_json import error_payload

_log = logging.getLogger(__name__)
_log.setLevel(logging.ERROR)  # see the module docstring


def guarded_protocol(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """The protocol class to pass to uvicorn as ``http=``, with the given limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"header_timeout": header_timeout, "max_connections": max_connections})


def _response_bytes(status: int, reason: str, payload: dict, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    body = json.dumps(payload).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    max_connections: int = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _log
        self._header_timer: asyncio.TimerHandle | None = None
        self._bytes_since_response = False
        self.app = self._gate(self.app)

    # --- the header deadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self._bytes_since_response = True
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete: its body has a deadline of its own
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        # armed first: the call below may start a pipelined request at once, which disarms it again
        self._bytes_since_response = False
        self._arm_header_deadline()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._bytes_since_response:  # a request was begun: say why it ends here (an idle one just closes)
            message = f"the request's headers did not arrive within {self.header_timeout:g} s"
            self.transport.write(_response_bytes(408, "Request Timeout", error_payload("", 408, message)))
        self.transport.close()

    # --- JSON for uvicorn's own errors

    def send_400_response(self, msg: str) -> None:
        limit = self.config.h11_max_incomplete_event_size  # the server always sets it
        message = ("malformed HTTP request: a bad request line or header (such as a Content-Length that is not a "
                   f"whole number of bytes), or a request line and headers over {limit} bytes")
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(_response_bytes(400, "Bad Request", error_payload("", 400, message)))
        self.transport.close()

    # --- the header size and the connection cap

    def _gate(self, app: Any) -> Any:
        async def gated(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            limit = self.config.h11_max_incomplete_event_size
            size = len(scope["raw_path"]) + len(scope["query_string"]) + sum(len(k) + len(v) + 4
                                                                           for k, v in scope["headers"])
            if limit is not None and size > limit:
                await _refuse(send, scope, 431, f"the request line and headers take {size} bytes, over the limit "
                                                f"of {limit}")
            elif len(self.connections) > self.max_connections:
                await _refuse(send, scope, 503, f"the server has {len(self.connections)} open connections, over "
                                                f"its limit of {self.max_connections}; retry in a moment")
            else:
                await app(scope, receive, send)

        return gated


async def _refuse(send: Any, scope: dict, status: int, message: str) -> None:
    """Answer with a JSON error and close the connection (the request's body, if any, stays unread)."""
    body = json.dumps(error_payload(scope["path"], status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
