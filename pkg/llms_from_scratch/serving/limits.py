"""What one client may take of the server: sizes, counts and deadlines, with defaults for a server on a laptop."""

from __future__ import annotations

from dataclasses import dataclass

from .chat_service import MAX_BODY


@dataclass(frozen=True)
class ServerLimits:
    """What one client may take of the server. Times are in seconds.

    ``max_body``: bytes of JSON per request. ``max_tokens``: the longest reply a request may ask for (the model's
    context bounds prompt plus reply as well). ``max_waiting``: requests that may wait while one generates; the
    next gets a 503. ``max_connections``: open connections; a request on one more gets a 503.
    ``header_timeout``: for a request's line and headers to arrive, counted from the connection's start or the
    previous response. ``body_timeout``: for the body, once the headers are in. ``keep_alive_timeout``: an idle
    connection's life between requests. ``max_header_bytes``: request line plus headers.
    ``shutdown_timeout``: how long a stopping server lets requests in progress finish.
    """

    max_body: int = MAX_BODY
    max_tokens: int = 2048
    max_waiting: int = 16
    max_connections: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_header_bytes: int = 16 * 1024
    shutdown_timeout: float = 5.0


DEFAULT_LIMITS = ServerLimits()
