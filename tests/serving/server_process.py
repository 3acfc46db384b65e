"""The real server process for the serving tests: ``llms-from-scratch serve`` as a child process, and how the
tests talk to it (whole requests, raw bytes on a socket, its resident memory and its log)."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import llms_from_scratch

CONTEXT = 4096  # the small model's context: long enough that a request can keep the server busy for seconds
MODEL_ID = "tiny-chat"  # the model folder's name, which is what the server calls the model

# short limits, so that the tests of timeouts and full queues take seconds
TIGHT = ("--header-timeout", "1", "--body-timeout", "1", "--max-waiting", "1", "--max-connections", "8",
         "--max-tokens", str(CONTEXT))



class ServerProcess:
    """One ``llms-from-scratch serve`` child: its address, its resident memory, its log."""

    def __init__(self, args: list[str], log_path: Path, startup_timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(llms_from_scratch.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "llms_from_scratch.cli", "serve", "--port", "0", "--device", "cpu",
                   "--dtype", "float32", "--no-autotune", "--threads", "1", *args]
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                            env=env, text=True)
        # the one line it prints: "serving NAME at http://HOST:PORT/v1 (Ctrl+C stops)"
        ready, _, _ = select.select([self.process.stdout], [], [], startup_timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("serving "):
            self.stop()
            raise RuntimeError(f"the server did not start within {startup_timeout:g} s: {line!r}\n{self.log()}")
        self.model = line.split(" at ")[0].removeprefix("serving ")
        self.host, port = line.split("http://")[1].split("/v1")[0].rsplit(":", 1)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        """Resident memory of the server process (VmRSS), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()

    # --- talking to it

    def request(self, method: str, path: str, body: object = None, headers: dict | None = None,
                timeout: float = 60.0) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body) of one request on a fresh connection."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def chat(self, content: str, max_tokens: int = 8, **fields) -> tuple[int, dict]:
        """POST /v1/chat/completions with one user message (greedy unless ``fields`` say otherwise)."""
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
                "temperature": 0, **fields}
        status, _, data = self.request("POST", "/v1/chat/completions", body)
        return status, json.loads(data)

    def raw(self, data: bytes, wait: float = 10.0) -> tuple[bytes, float]:
        """Send ``data`` on a new connection, read until the server closes it (or ``wait`` passes): (what came
        back, seconds until the server closed)."""
        started = time.monotonic()
        with socket.create_connection((self.host, self.port), timeout=wait) as s:
            s.sendall(data)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except (TimeoutError, ConnectionResetError):
                pass
        return out, time.monotonic() - started


def status_and_json(reply: bytes) -> tuple[int, dict]:
    """The status code and JSON body of a raw HTTP/1.1 response (one with a Content-Length)."""
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)
