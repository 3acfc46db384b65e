"""A bounded load test of the real server process, on 127.0.0.1 only (issue 15's "Done when").

At the same time: clients that ask correctly (plain and streamed), clients that send their headers a byte at a time,
bodies shorter than their Content-Length, bodies far over the limit (announced, chunked, or with a negative length)
sent as fast as the socket takes them, and clients that hang up while their reply is generated. Afterwards the
server must answer correctly and at once (the abandoned generations were stopped, the slow connections closed at
their deadlines) and its resident memory (VmRSS) must have grown by less than ``RSS_GROWTH_MIB``.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from server_process import CONTEXT, status_and_json

HEADER_TIMEOUT = BODY_TIMEOUT = 2.0
LIMITS = ("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT), "--max-waiting", "4",
          "--max-connections", "48", "--max-tokens", str(CONTEXT))
# bodies of 1 MiB at most, six of them at a time at most, plus what the small model's replies take: a leak of one
# request's body per hostile client (about 60 of them) would exceed this
RSS_GROWTH_MIB = 48
FLOOD_MIB = 32  # what each flooding client tries to send


def _post_raw(host: str, port: int, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data) + data


def _sse_text(raw: bytes) -> str:
    pieces = []
    for line in raw.decode().splitlines():
        if line.startswith("data: {"):
            choice = json.loads(line[6:])["choices"][0]
            pieces.append(choice["delta"].get("content") or "")
    return "".join(pieces)


@pytest.mark.slow
def test_the_server_survives_a_mixed_load_within_its_limits(server, expected_reply):
    process = server(*LIMITS)
    host, port = process.host, process.port
    questions = [f"question {i}" for i in range(6)]
    expected = {q: expected_reply([{"role": "user", "content": q}], 12) for q in questions}
    for q in questions[:2]:  # warm up before measuring memory
        assert process.chat(q, 12)[1]["choices"][0]["message"]["content"] == expected[q]
    rss_before = process.rss_mb()
    failures: list[str] = []
    answered, refused = [], []

    def check(condition: bool, what: str) -> None:
        if not condition:
            failures.append(what)

    def polite(i: int) -> None:
        for n in range(3):
            q = questions[(i + n) % len(questions)]
            streamed = (i + n) % 2 == 1
            status, headers, raw = process.request(
                "POST", "/v1/chat/completions",
                {"model": process.model, "messages": [{"role": "user", "content": q}], "max_tokens": 12,
                 "temperature": 0, "stream": streamed}, timeout=120)
            if status == 503:  # the queue was full: allowed under this load, and said in JSON
                check(json.loads(raw)["error"]["code"] in ("server_busy", None), f"503 body {raw[:200]!r}")
                refused.append(q)
                continue
            text = _sse_text(raw) if streamed else json.loads(raw)["choices"][0]["message"]["content"]
            check(status == 200 and text == expected[q], f"polite client {i}: {status} {raw[:200]!r}")
            answered.append(q)

    def dripping(i: int) -> None:  # a header byte every 0.25 s: the deadline counts from the start, not per byte
        started = time.monotonic()
        with socket.create_connection((host, port), timeout=HEADER_TIMEOUT + 5) as s:
            try:
                for byte in b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
                    s.sendall(bytes([byte]))
                    time.sleep(0.25)
                check(False, f"dripping client {i} was never cut off")
            except OSError:
                pass
            elapsed = time.monotonic() - started
            check(elapsed < HEADER_TIMEOUT + 1.5, f"dripping client {i} held its connection for {elapsed:.1f} s")

    def short_body(i: int) -> None:
        reply, seconds = process.raw(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                                     b"\r\n{\"model\": ", wait=BODY_TIMEOUT + 5)
        check(reply.startswith(b"HTTP/1.1 408") and seconds < BODY_TIMEOUT + 1.5,
              f"short body {i}: {reply[:60]!r} after {seconds:.1f} s")

    def flood(i: int) -> None:
        head = [b"Content-Length: 2000000000", b"Transfer-Encoding: chunked", b"Content-Length: -1"][i % 3]
        chunk = b"x" * 65536
        with socket.create_connection((host, port), timeout=10) as s:
            try:
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n\r\n")
                for _ in range(FLOOD_MIB * 16):
                    s.sendall(chunk)
            except OSError:
                pass  # the server answered and closed: the rest of the flood never lands
            try:
                reply = s.recv(200)
            except OSError:
                reply = b"HTTP/1.1 4"  # reset after the answer; what counts is that the flood stopped
            check(reply.startswith(b"HTTP/1.1 4"), f"flood {head!r}: {reply[:60]!r}")

    def hang_up(i: int) -> None:
        body = {"model": process.model, "messages": [{"role": "user", "content": f"long {i}"}], "max_tokens": 2000,
                "temperature": 0, "stream": i % 2 == 0}
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(_post_raw(host, port, body))
            time.sleep(0.2 + 0.1 * i)

    clients = ([threading.Thread(target=polite, args=(i,)) for i in range(8)]
               + [threading.Thread(target=dripping, args=(i,)) for i in range(12)]
               + [threading.Thread(target=short_body, args=(i,)) for i in range(8)]
               + [threading.Thread(target=flood, args=(i,)) for i in range(6)]
               + [threading.Thread(target=hang_up, args=(i,)) for i in range(6)])
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=180)
    assert not any(client.is_alive() for client in clients)
    assert not failures, failures[:5]
    assert len(answered) >= 8, (answered, refused)  # most polite requests got through; the rest were told why

    # afterwards: a free worker at once, correct answers, no connection left over, bounded memory
    started = time.monotonic()
    status, data = process.chat(questions[0], 12)
    assert status == 200 and data["choices"][0]["message"]["content"] == expected[questions[0]]
    assert time.monotonic() - started < 3.0
    for _ in range(60):  # more requests in a row than the connection limit: none refused
        assert process.request("GET", "/v1/models")[0] == 200
    growth = process.rss_mb() - rss_before
    assert growth < RSS_GROWTH_MIB, f"resident memory grew by {growth:.0f} MiB"
    assert process.alive() and "Traceback" not in process.log()
    status, body = status_and_json(process.raw(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0])
    assert status == 200 and body["data"][0]["id"] == process.model
