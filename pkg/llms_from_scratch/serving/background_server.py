"""Run this project's OpenAI-compatible server in a child process for the length of a ``with`` block.

    with serve_in_background("smollm2-135m-instruct", threads=1) as server:
        client = JudgeClient(url=server.url, model=server.model)
        ...

The child is ``python -m llms_from_scratch.cli serve --port 0``: the operating system picks a free port (no race
between choosing a port and binding it), and the child prints the model id and the address it bound. We wait
until ``/v1/models`` lists the model, and the server is stopped when the block ends, however it ends. Its output
goes to a temporary log file whose tail is shown if it fails to start. Standard library only here; the child
needs the ``serve`` extra (Starlette and uvicorn).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_JUDGE = "smollm2-135m-instruct"
_READY_LINE = re.compile(r"serving (.+) at (http://\S+?)/v1 ")


class ServerStartError(RuntimeError):
    """The child server exited or did not become ready in time; the message carries the end of its log."""


@dataclass
class BackgroundServer:
    url: str  # base address, e.g. http://127.0.0.1:PORT
    model: str  # the model id that requests must name (a file's name without its folder, for a path)
    process: subprocess.Popen
    log_path: Path


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _models_listed(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as response:
        return [m["id"] for m in json.loads(response.read())["data"]]


def _wait_until_ready(process: subprocess.Popen, log_path: Path, timeout: float) -> tuple[str, str]:
    """(url, model id) once the child answers."""
    deadline = time.monotonic() + timeout
    url = model = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"the server exited with code {process.returncode} before it was ready; "
                                   f"its output ends with:\n{_tail(log_path, 15)}")
        if url is None:
            found = _READY_LINE.search(log_path.read_text(encoding="utf-8", errors="replace"))
            model, url = found.groups() if found else (None, None)
        if url is not None:
            try:
                if model in _models_listed(url):
                    return url, model
            except (OSError, ValueError, KeyError):
                pass  # bound but not answering yet: try again
        time.sleep(0.1)
    raise ServerStartError(f"the server was not ready within {timeout:g} s (loading a model the first time may "
                           f"download it: raise startup_timeout=); its output ends with:\n{_tail(log_path, 15)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serve_in_background(model: str = DEFAULT_JUDGE, *, threads: int | None = 1, startup_timeout: float = 300.0,
                        host: str = "127.0.0.1") -> Iterator[BackgroundServer]:
    """Start ``llms-from-scratch serve -m MODEL`` on a free port, yield it once it answers, stop it afterwards.

    ``threads`` caps the server's PyTorch threads (``None``: PyTorch's default) so that it does not compete with
    the process that sends it requests. The child imports the same ``llms_from_scratch`` as this process.
    """
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds llms_from_scratch/
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "llms_from_scratch.cli", "serve", "-m", model, "--host", host, "--port", "0"]
    if threads is not None:
        command += ["--threads", str(threads)]
    fd, name = tempfile.mkstemp(prefix="llms-serve-", suffix=".log")
    log_path = Path(name)
    try:
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env)
        try:
            url, model_id = _wait_until_ready(process, log_path, startup_timeout)
            yield BackgroundServer(url, model_id, process, log_path)
        finally:
            _stop(process)
    finally:
        log_path.unlink(missing_ok=True)
