"""A real HTTP server on 127.0.0.1 for tests: each path answers in one scripted way.

    with serve({"/ok.txt": Reply(body=b"..."), "/gone": Reply(status=404)}) as base_url:
        urllib.request.urlopen(base_url + "/ok.txt")

``Reply(drop_after=n)`` announces the full length, sends ``n`` bytes and closes the connection, like a network
that breaks mid-file; ``delay`` holds the answer back to trigger client timeouts. Every request is recorded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/octet-stream"),)
    drop_after: int | None = None
    delay: float = 0.0


@contextlib.contextmanager
def serve(routes: dict[str, Reply], requests: list | None = None):
    """Run a server for the duration of the ``with`` block and yield its base URL."""
    log = requests if requests is not None else []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server dispatches to)
            self._answer(include_body=True)

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            log.append((self.command, self.path, self.rfile.read(length)))
            self._answer(include_body=True, logged=True)

        def _answer(self, include_body: bool, logged: bool = False):
            try:
                self._write(include_body, logged)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (a timeout test): nothing left to say

        def _write(self, include_body: bool, logged: bool):
            if not logged:
                log.append((self.command, self.path, b""))
            reply = routes.get(self.path, Reply(status=404, body=b"not found"))
            if reply.delay:
                time.sleep(reply.delay)
            self.send_response(reply.status)
            for key, value in reply.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if not include_body:
                return
            if reply.drop_after is not None:
                self.wfile.write(reply.body[: reply.drop_after])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(reply.body)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
