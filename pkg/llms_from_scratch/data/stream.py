"""Copying one URL's body into an open file, within a size cap and a deadline.

What the server or the network does wrong becomes a :class:`DownloadError` whose message says why; an error
while *writing* (a read-only or full disk) is left as the ``OSError`` it is, because it is the cache's fault,
not the source's, and the caller reports it as such.

The deadline covers the whole transfer, the response headers included: a watchdog thread shuts the connection's
socket down when time is up, which wakes a read blocked anywhere inside ``urllib`` or ``http.client``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import BinaryIO

from tqdm import tqdm

from .limits import DEADLINE_ENV, deadline_for

_CHUNK = 1 << 20


class DownloadError(Exception):
    """One URL (or pip) did not deliver the whole file; the message says why."""


class _Watchdog:
    """Shuts down every socket of one transfer once ``seconds`` have passed since it was created."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.reset(seconds)

    def reset(self, seconds: float) -> None:
        """Move the deadline to ``seconds`` after the start (once the server has said how much it will send)."""
        if self._timer is not None:
            self._timer.cancel()
        self.seconds = seconds
        self._timer = threading.Timer(max(0.0, self.start + seconds - time.monotonic()), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            late = self.expired
        if late:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def connection_class(self, base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        watchdog = self

        class Watched(base):
            def connect(self) -> None:
                super().connect()
                watchdog.track(self.sock)

        return Watched


def _shut(sock: socket.socket) -> None:
    try:
        # the plain socket's shutdown, also for an SSL socket: it wakes a blocked read without touching TLS state
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """``urllib``'s usual opener (proxies, redirects) whose connections the watchdog can shut down."""

    class HTTP(urllib.request.HTTPHandler):
        def do_open(self, http_class, req, **kwargs):
            return super().do_open(watchdog.connection_class(http_class), req, **kwargs)

    handlers: list[type] = [HTTP]
    if hasattr(urllib.request, "HTTPSHandler"):  # absent when Python was built without ssl

        class HTTPS(urllib.request.HTTPSHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(watchdog.connection_class(http_class), req, **kwargs)

        handlers.append(HTTPS)
    return urllib.request.build_opener(*handlers)


def stream_url(url: str, out: BinaryIO, *, label: str, quiet: bool, timeout: float, max_bytes: int,
               deadline: float | None = None, expected: int | None = None) -> int:
    """Write the body of ``url`` to ``out`` with a progress bar; return the number of bytes written.

    ``timeout``: seconds a single read may wait. ``max_bytes``: more than this and the transfer stops.
    ``deadline``: seconds for the whole transfer; None: what :func:`~.limits.deadline_for` allows the
    ``expected`` size or, when that is unknown, the size the server announces (``max_bytes`` until it does).
    """
    if deadline is not None:
        seconds = deadline
    else:
        seconds = deadline_for(expected if expected is not None else max_bytes)
    watchdog = _Watchdog(seconds)
    request = urllib.request.Request(url, headers={"User-Agent": "llms-from-scratch"})
    try:
        return _copy(_opener(watchdog), request, out, watchdog, label=label, quiet=quiet, timeout=timeout,
                     max_bytes=max_bytes, fixed_deadline=deadline is not None or expected is not None)
    finally:
        watchdog.stop()


def _copy(opener, request, out: BinaryIO, watchdog: _Watchdog, *, label: str, quiet: bool, timeout: float,
          max_bytes: int, fixed_deadline: bool) -> int:
    try:
        response = opener.open(request, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise _network_error(exc, watchdog, timeout, 0) from None
    received = 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise DownloadError(f"the server announces {total:,} bytes, more than the {max_bytes:,} expected")
        if total is not None and not fixed_deadline:
            watchdog.reset(deadline_for(total))
        read = getattr(response, "read1", response.read)  # read1 returns what has arrived instead of waiting for more
        with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=quiet, leave=False) as bar:
            while True:
                try:
                    block = read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _network_error(exc, watchdog, timeout, received) from None
                if watchdog.expired:  # the watchdog ended the connection: what arrived is not the whole file
                    raise _network_error(TimeoutError(), watchdog, timeout, received)
                if not block:
                    break
                if received + len(block) > max_bytes:
                    raise DownloadError(f"the server sent more than the {max_bytes:,} bytes expected; stopped there")
                out.write(block)  # an OSError here (disk full, read-only) is the cache's, not the server's
                received += len(block)
                bar.update(len(block))
    if total is not None and received < total:
        raise DownloadError(f"connection closed after {received:,} of {total:,} bytes")
    return received


def _network_error(exc: BaseException, watchdog: _Watchdog, timeout: float, received: int) -> DownloadError:
    if watchdog.expired:
        return DownloadError(f"gave up after {watchdog.seconds:g} s, the time one source may take "
                             f"({received:,} bytes had arrived); set {DEADLINE_ENV} to allow more seconds")
    if isinstance(exc, urllib.error.HTTPError):
        return DownloadError(f"HTTP {exc.code} {exc.reason}")
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return DownloadError(f"timed out after {timeout:g} s without data")
        return DownloadError(f"could not connect ({exc.reason})")
    if isinstance(exc, TimeoutError):
        return DownloadError(f"timed out after {timeout:g} s without data")
    # reset connections, IncompleteRead, bad status lines
    return DownloadError(f"connection broke off ({exc.__class__.__name__}: {exc})")
