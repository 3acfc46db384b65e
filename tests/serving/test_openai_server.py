"""The OpenAI-compatible server, tested with the official `openai` client: the models list, plain and streamed
chat completions, queued concurrent requests, and 4xx JSON errors for bad requests."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from llms_from_scratch.serving.server import make_server

openai = pytest.importorskip("openai")
from zoo_reference import expected_chat_reply  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
NAME = "tiny-qwen3"


@pytest.fixture(scope="module")
def server(tiny_chat_model):
    model, tokenizer = tiny_chat_model
    srv = make_server(model, tokenizer, NAME, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def client(server):
    host, port = server.server_address[:2]
    return openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key="unused", max_retries=0)


def test_models_endpoint(client):
    assert [m.id for m in client.models.list().data] == [NAME]


def test_chat_completion_plain_and_streaming(client, tiny_chat_model):
    expected = expected_chat_reply(*tiny_chat_model, "Hello there", 8)
    reply = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hello there"}],
                                           max_tokens=8, temperature=0)
    assert reply.choices[0].message.content == expected
    assert reply.usage.completion_tokens <= 8 and reply.choices[0].finish_reason in ("stop", "length")
    chunks = list(client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": "Hello there"}], max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == reply.choices[0].finish_reason


def test_concurrent_requests_are_queued(client, tiny_chat_model):
    questions = ["one", "two", "three", "four"]
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda q: client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": q}], max_tokens=6, temperature=0), questions))
    assert [r.choices[0].message.content for r in replies] == [expected_chat_reply(*tiny_chat_model, q, 6) for q in questions]


def test_bad_requests_get_4xx_json(client, server):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model=NAME, messages=[])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "x"}], temperature=7)
    host, port = server.server_address[:2]
    for method, path, body, status in [("POST", "/v1/chat/completions", b"{not json", 400),
                                       ("POST", "/v1/chat/completions", b"[1, 2]", 400),
                                       ("GET", "/v1/nothing", None, 404)]:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == status
        assert "message" in json.loads(response.read())["error"]
        conn.close()
    assert [m.id for m in client.models.list().data] == [NAME]  # still serving


@pytest.mark.parametrize("length, deep", [("-1", False), ("abc", False), (None, True)])
def test_bad_lengths_and_deep_json_get_400_without_reading_to_eof(server, length, deep):
    # a negative length would make the server read until the client hangs up; the request must be refused at once
    host, port = server.server_address[:2]
    body = b"[" * 100_000 + b"]" * 100_000 if deep else b'{"model": "x"}'
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("POST", "/v1/chat/completions")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)) if length is None else length)
    conn.endheaders()
    if length is None:
        conn.send(body)
    response = conn.getresponse()  # with the connection still open: a server reading to EOF would time out here
    assert response.status == 400
    assert "message" in json.loads(response.read())["error"]
    conn.close()
