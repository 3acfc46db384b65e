"""A raw HTTP server on 127.0.0.1 for the data layer's limits: answers that trickle, never end, or stall.

    with serve_raw(drip(body, interval=0.5)) as base_url:
        ...  # any path gets the scripted answer

``local_http.serve`` answers like a well-behaved server; these scripts write the bytes by hand instead, one at a
time or without end, which ``http.server`` cannot do. Every script also stops after ``MAX_SECONDS`` so that a
client without limits (the code before they existed) still finishes its test, by failing it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

MAX_SECONDS = 20.0

Script = Callable[[socket.socket, threading.Event], None]


def drip(body: bytes, interval: float) -> Script:
    """Announce ``len(body)`` bytes, then send them one at a time, ``interval`` seconds apart."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        for i in range(len(body)):
            if stop.wait(interval):
                return
            conn.sendall(body[i:i + 1])

    return script


def endless(block: bytes = b"x" * 65536, limit: int = 64 * 2**20) -> Script:
    """Announce no length and keep sending (up to ``limit`` bytes, far more than any test's asset)."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        sent = 0
        while sent < limit and not stop.is_set():
            conn.sendall(block)
            sent += len(block)

    return script


def header_drip(interval: float) -> Script:
    """Send a status line, then the headers one byte at a time, never finishing them."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(interval):
            conn.sendall(b"X")

    return script


@contextlib.contextmanager
def serve_raw(script: Script) -> Iterator[str]:
    """Run ``script`` for every connection while the ``with`` block lasts; yield the base URL."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                script(conn, stop)
            except OSError:
                pass  # the client hung up: that is what most of these tests expect

    def accept() -> None:
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() - started < MAX_SECONDS:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    timer = threading.Timer(MAX_SECONDS, stop.set)
    timer.daemon = True
    timer.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        timer.cancel()
        thread.join(timeout=5)
        listener.close()
