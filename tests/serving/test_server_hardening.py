"""The server against careless and hostile clients (issue 15, items 2, 3, 7, 13 and 16, and the API key), each
against the real ``llms-from-scratch serve`` process on 127.0.0.1 with a small random model (see conftest.py).

Most tests share one server with short limits (``tight_server``: 1 s for headers and for a body, one request
waiting behind the one that generates, 8 connections).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import pytest
from server_process import CONTEXT, MODEL_ID, status_and_json

from llms_from_scratch.cli import main

HELLO = [{"role": "user", "content": "hello"}]


def _error(status: int, data: dict, param: str | None = None) -> str:
    """The message of an OpenAI-shaped error, after checking its status and field."""
    assert data["error"]["type"] == ("invalid_request_error" if status < 500 else "server_error")
    if param is not None:
        assert data["error"]["param"] == param
    return data["error"]["message"]


# --- item 2: prompt plus max_tokens against the context


def _user_turn_of(tokenizer, tokens: int) -> tuple[str, int]:
    """(text, prompt length): the longest repetition of "hello world " whose chat prompt has at most ``tokens``."""
    def length(k: int) -> int:
        return len(tokenizer.encode_chat([{"role": "user", "content": "hello world " * k}]))

    k = tokens * 100 // length(100) + 5
    while length(k) > tokens:
        k -= 1
    return "hello world " * k, length(k)


def test_prompt_plus_max_tokens_over_the_context_is_refused_naming_both(tight_server, tiny_folder):
    tokenizer = tiny_folder[1]
    text, n_prompt = _user_turn_of(tokenizer, 3000)  # fits alone, not with 2000 more
    status, data = tight_server.chat(text, max_tokens=2000)
    message = _error(status, data, "max_tokens")
    assert status == 400 and f"takes {n_prompt} tokens" in message and "2000 more" in message
    assert f"context of {CONTEXT} tokens" in message
    # a prompt over the whole context, with or without max_tokens
    status, data = tight_server.chat(text * 2, max_tokens=1)
    assert status == 400 and f"context of {CONTEXT}" in _error(status, data)
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": text * 2}]}
    status, _, raw = tight_server.request("POST", "/v1/chat/completions", body)
    assert status == 400 and f"context of {CONTEXT}" in json.loads(raw)["error"]["message"]
    # without max_tokens the default reply length (256) shrinks to the room left
    text, n_prompt = _user_turn_of(tokenizer, CONTEXT - 100)
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": text}], "temperature": 0}
    status, _, raw = tight_server.request("POST", "/v1/chat/completions", body)
    assert status == 200 and json.loads(raw)["usage"]["completion_tokens"] == CONTEXT - n_prompt < 256


# --- item 3: values that crashed a request get a 4xx JSON answer


@pytest.mark.parametrize("fields, param", [
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature"),
    ({"top_p": float("nan")}, "top_p"),
    ({"seed": 2**70}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"max_tokens": 1e9}, "max_tokens"),
    ({"max_tokens": 10**30}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"temperature": True}, "temperature"),
    ({"stop": [1, 2]}, "stop"),
    ({"stop": ["x"] * 17}, "stop"),
    ({"n": 2}, "n"),
    ({"stream": "yes"}, "stream"),
    ({"messages": [{"role": "user", "content": ["parts"]}]}, "messages"),
])
def test_bad_field_values_get_400_naming_the_field(tight_server, fields, param):
    body = {"model": MODEL_ID, "messages": HELLO, "max_tokens": 4, **fields}
    status, headers, raw = tight_server.request("POST", "/v1/chat/completions", json.dumps(body).encode())
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert param in _error(status, json.loads(raw), param)


@pytest.mark.parametrize("request_bytes", [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 400000\r\n\r\n" + b"[" * 200_000 + b"]" * 200_000,
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"1" * 5000,
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
])
def test_malformed_requests_get_a_4xx_json_answer_and_no_traceback(tight_server, request_bytes):
    reply, _ = tight_server.raw(request_bytes)
    status, data = status_and_json(reply)
    assert 400 <= status < 500 and data["error"]["message"]
    assert tight_server.alive() and "Traceback" not in tight_server.log()
    assert tight_server.chat("hello", 2)[0] == 200


# --- item 7: threads and time


def test_partial_headers_and_short_bodies_are_cut_off_at_their_deadlines(tight_server):
    partial = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le"
    short_body = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\""
    results: list[tuple[bytes, float]] = []

    def slow_client(data: bytes) -> None:
        results.append(tight_server.raw(data, wait=15))

    clients = [threading.Thread(target=slow_client, args=(data,)) for data in [partial] * 3 + [short_body] * 3]
    for client in clients:
        client.start()
    time.sleep(0.3)
    assert tight_server.chat("hello", 2)[0] == 200  # served while the slow clients hold 6 of its 8 connections
    for client in clients:
        client.join()
    for reply, seconds in results:  # each answered 408 and closed after its 1 s deadline, not held
        status, data = status_and_json(reply)
        assert status == 408 and "within 1 s" in data["error"]["message"] and seconds < 5


def _calibrated_long_request(server) -> tuple[int, float]:
    """(max_tokens, seconds): a request that would keep the worker busy for many times the returned bound."""
    started = time.monotonic()
    assert server.chat("hello", 200)[0] == 200
    per_token = (time.monotonic() - started) / 200
    tokens = CONTEXT - 100  # the tight server allows replies that long
    full = tokens * per_token  # a lower bound: later tokens take longer
    return tokens, max(1.5, min(5.0, full / 4))


def _send_and_hang_up(server, body: dict, after: float) -> None:
    """Send ``body`` and close the connection ``after`` seconds later, having seen the request accepted: the
    start of the stream for a streamed reply, no answer yet for a whole one (an error would come at once)."""
    data = json.dumps(body).encode()
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        s.settimeout(after)
        try:
            assert s.recv(100).startswith(b"HTTP/1.1 200") and body.get("stream")
            time.sleep(after)
        except TimeoutError:
            assert not body.get("stream")


@pytest.mark.parametrize("streaming", [False, True])
def test_a_client_that_hangs_up_frees_the_worker(tight_server, streaming):
    tokens, bound = _calibrated_long_request(tight_server)
    body = {"model": MODEL_ID, "messages": HELLO, "max_tokens": tokens, "temperature": 0, "stream": streaming}
    _send_and_hang_up(tight_server, body, after=0.5)
    started = time.monotonic()
    status, data = tight_server.chat("hello", 4)
    assert status == 200 and data["usage"]["completion_tokens"] == 4
    assert time.monotonic() - started < bound  # the abandoned generation stopped; it did not run to the end


def test_a_full_queue_and_too_many_connections_get_json_503(tight_server):
    tokens, _ = _calibrated_long_request(tight_server)
    body = {"model": MODEL_ID, "messages": HELLO, "max_tokens": tokens, "temperature": 0}
    hang_ups = [threading.Thread(target=_send_and_hang_up, args=(tight_server, body, 3.0)) for _ in range(2)]
    for thread in hang_ups:  # one generates, one waits: the queue (--max-waiting 1) is full
        thread.start()
        time.sleep(0.3)
    status, headers, raw = tight_server.request("POST", "/v1/chat/completions", {**body, "max_tokens": 2})
    assert status == 503 and headers["retry-after"] == "1"
    assert "busy" in _error(status, json.loads(raw))
    for thread in hang_ups:
        thread.join()
    idle = [socket.create_connection((tight_server.host, tight_server.port)) for _ in range(8)]
    try:  # 8 open connections plus this one: over --max-connections 8
        status, data = status_and_json(tight_server.raw(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")[0])
        assert status == 503 and "open connections" in _error(status, data)
    finally:
        for s in idle:
            s.close()
    time.sleep(0.2)
    assert tight_server.chat("hello", 2)[0] == 200


# --- item 13: semantics


def test_top_p_zero_is_greedy_and_an_empty_stop_string_stops_nothing(tight_server, expected_reply):
    greedy = expected_reply(HELLO, 12)
    for seed in (1, 2):
        status, data = tight_server.chat("hello", 12, temperature=1.5, top_p=0, seed=seed)
        assert status == 200 and data["choices"][0]["message"]["content"] == greedy
    for stop in ("", [""], ["", "\u2603"]):
        status, data = tight_server.chat("hello", 12, stop=stop)
        assert data["choices"][0]["message"]["content"] == greedy and data["choices"][0]["finish_reason"] == "length"
    assert tight_server.chat("hello", 12, n=1)[1]["choices"][0]["message"]["content"] == greedy


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "GET"])
def test_every_method_and_path_gets_json(tight_server, method):
    status, headers, raw = tight_server.request(method, "/v1/chat/completions")
    assert status == 405 and headers["content-type"] == "application/json" and headers["allow"] == "POST"
    if method != "HEAD":  # a HEAD answer has no body
        assert method in json.loads(raw)["error"]["message"]
    status, headers, raw = tight_server.request(method, "/no/such/path")
    assert status == 404 and headers["content-type"] == "application/json"
    status, headers, raw = tight_server.request(method, "/api/nothing")  # Ollama's error shape under /api/
    assert status == 404 and (method == "HEAD" or isinstance(json.loads(raw)["error"], str))


def test_query_strings_and_trailing_slashes_reach_their_routes(tight_server):
    for path in ("/v1/models?x=1", "/v1/models/", f"/v1/models/{MODEL_ID}?a=b"):
        status, _, raw = tight_server.request("GET", path)
        assert status == 200 and MODEL_ID in raw.decode()
    body = {"model": MODEL_ID, "messages": HELLO, "max_tokens": 2}
    assert tight_server.request("POST", "/v1/chat/completions?stream=false", body)[0] == 200


# --- item 16: model ids without paths


def test_a_folder_is_served_under_its_name_not_its_path(tight_server, tiny_folder):
    folder = tiny_folder[0]
    assert tight_server.model == MODEL_ID == folder.name
    _, _, raw = tight_server.request("GET", "/v1/models")
    assert [m["id"] for m in json.loads(raw)["data"]] == [MODEL_ID]
    status, data = tight_server.chat("hello", 2, model="gpt-9")  # the error names the model the server holds
    message = _error(status, data, "model")
    assert status == 404 and f"serves '{MODEL_ID}'" in message and str(folder.parent) not in message
    _, _, raw = tight_server.request("GET", "/api/tags")
    assert json.loads(raw)["models"][0]["name"] == f"{MODEL_ID}:latest"


@pytest.mark.slow
def test_a_gguf_file_is_served_under_its_file_name(server, tmp_path):
    from llms_from_scratch.data import AssetUnavailableError, fetch

    try:
        gguf = fetch("smollm2-135m-instruct-gguf", quiet=True)
    except AssetUnavailableError as exc:
        pytest.skip(f"the SmolLM2 GGUF is not in the mirror or cache: {str(exc).splitlines()[0]}")
    private = tmp_path / "home" / "someone" / "private-models"
    private.mkdir(parents=True)
    (private / gguf.name).symlink_to(gguf)
    process = server("-m", str(private / gguf.name))
    assert process.model == gguf.stem and "/" not in process.model
    _, _, raw = process.request("GET", "/v1/models")
    assert [m["id"] for m in json.loads(raw)["data"]] == [gguf.stem] and "private-models" not in raw.decode()


# --- the API key, the warning, the missing extra


def test_api_key_is_required_when_set(server):
    process = server("--api-key", "s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        status, response_headers, raw = process.request("GET", "/v1/models", headers=headers)
        assert status == 401 and response_headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in json.loads(raw)["error"]["message"]
    status, _, raw = process.request("GET", "/api/tags")
    assert status == 401 and isinstance(json.loads(raw)["error"], str)  # Ollama's shape
    assert process.request("GET", "/v1/models", headers={"Authorization": "Bearer s3cret"})[0] == 200
    body = {"model": MODEL_ID, "messages": HELLO, "max_tokens": 2}
    assert process.request("POST", "/v1/chat/completions", body, {"Authorization": "bearer s3cret"})[0] == 200
    assert "warning" not in process.log()


def test_binding_beyond_loopback_without_a_key_warns(capsys):
    # the warning comes before the model loads; the unknown model then ends the command before anything binds
    assert main(["serve", "-m", "no-such-model", "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("warning: serving on 0.0.0.0 without --api-key") and "unknown model" in err
    assert main(["serve", "-m", "no-such-model", "--host", "0.0.0.0", "--api-key", "k"]) == 1
    assert "warning" not in capsys.readouterr().err
    assert main(["serve", "-m", "no-such-model", "--host", "127.0.0.1"]) == 1
    assert "warning" not in capsys.readouterr().err


def test_serve_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now fails
    assert main(["serve", "-m", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert err == 'error: the server needs Starlette and uvicorn: pip install "llms-from-scratch[serve]"\n'
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0 and "--api-key" in capsys.readouterr().out
