"""Ollama's chat API on the project's server, driven by the book's chapter 7 client (query_model and friends).

The server runs in this process on 127.0.0.1 with a tiny random Qwen3-architecture chat model served under the
name the book asks for, "llama3". Only the URL differs from the book's calls (the port is chosen by the system).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.error
import urllib.request

import pytest
import torch
from local_http import Reply, serve

from llms_from_scratch import ch07
from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.serving.generation import generate
from llms_from_scratch.serving.server import make_server
from llms_from_scratch.tokenizers import qwen3_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

CONTEXT = 320  # the model's context: replies to the book's prompts (no num_predict) stop here at the latest
ENTRY = {"instruction": "Rewrite the sentence using a simile.", "input": "The car is very fast.",
         "output": "The car is as fast as lightning.", "model_response": "The car is as fast as a cheetah."}


@pytest.fixture(scope="module")
def chat_model():
    torch.manual_seed(0)
    cfg = get_config("qwen3-0.6b", emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, head_dim=8, hidden_dim=48,
                     context_length=CONTEXT, tie_embeddings=False)  # untied: random logits are not peaked
    return build_model(cfg).eval(), qwen3_tokenizer()


@pytest.fixture(scope="module")
def url(chat_model):
    model, tokenizer = chat_model
    server = make_server(model, tokenizer, "llama3", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def _prompt_ids(tokenizer, prompt: str) -> torch.Tensor:
    return torch.tensor([tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": prompt}]))])


def _greedy_reply(chat_model, prompt: str, max_new_tokens: int | None = None) -> tuple[str, int, int]:
    """What the server should answer at temperature 0: (text, prompt tokens, reply tokens)."""
    model, tokenizer = chat_model
    ids = _prompt_ids(tokenizer, prompt)
    room = min(2048, CONTEXT) - ids.shape[1]  # the book's num_ctx is 2048; the model's context is smaller
    n = room if max_new_tokens is None else min(max_new_tokens, room)
    out = generate(model, ids, n, eos_ids=tokenizer.eos_ids)[0, ids.shape[1]:].tolist()
    out = out[: next((i for i, t in enumerate(out) if t in tokenizer.eos_ids), len(out))]
    return tokenizer.decode(out, skip_special=True), ids.shape[1], len(out)


def _post(url: str, body, raw: bool = False) -> tuple[int, list[dict]]:
    data = body if raw else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api/chat", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, [json.loads(line) for line in response if line.strip()]
    except urllib.error.HTTPError as exc:
        return exc.code, [json.loads(exc.read())]


def _chat(prompt: str, **fields) -> dict:
    return {"model": "llama3", "messages": [{"role": "user", "content": prompt}], **fields}


def test_tags_lists_the_served_model(url, chat_model):
    with urllib.request.urlopen(f"{url}/api/tags", timeout=10) as response:
        models = json.loads(response.read())["models"]
    model = chat_model[0]
    assert [m["name"] for m in models] == ["llama3:latest"] and models[0]["model"] == "llama3:latest"
    assert models[0]["size"] == sum(p.numel() * p.element_size() for p in model.parameters())
    assert models[0]["details"]["family"] == "qwen3" and models[0]["details"]["quantization_level"] == "FLOAT32"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", models[0]["modified_at"])


def test_query_model_gets_the_streamed_greedy_reply(url, chat_model):
    expected, _, _ = _greedy_reply(chat_model, "What is 2 + 2?")
    assert ch07.query_model("What is 2 + 2?", url=f"{url}/api/chat") == expected
    assert ch07.query_model("What is 2 + 2?", "llama3:latest", f"{url}/api/chat") == expected  # Ollama's tag


def test_stream_lines_have_ollamas_fields(url, chat_model):
    expected, n_prompt, n_reply = _greedy_reply(chat_model, "Name a colour.", max_new_tokens=12)
    status, lines = _post(url, _chat("Name a colour.", options={**ch07.QUERY_OPTIONS, "num_predict": 12}))
    assert status == 200 and len(lines) >= 2
    for line in lines:
        assert line["model"] == "llama3" and line["message"]["role"] == "assistant"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["created_at"])
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    final = lines[-1]
    assert final["message"]["content"] == "" and final["done_reason"] in ("stop", "length")
    assert (final["prompt_eval_count"], final["eval_count"]) == (n_prompt, n_reply)
    assert final["total_duration"] > 0
    assert "".join(line["message"]["content"] for line in lines) == expected


def test_stream_false_gives_one_object(url, chat_model):
    expected, n_prompt, n_reply = _greedy_reply(chat_model, "Name a colour.", max_new_tokens=12)
    status, lines = _post(url, _chat("Name a colour.", stream=False, options={"temperature": 0, "num_predict": 12}))
    assert status == 200 and len(lines) == 1
    reply = lines[0]
    assert reply["done"] is True and reply["message"] == {"role": "assistant", "content": expected}
    assert (reply["prompt_eval_count"], reply["eval_count"]) == (n_prompt, n_reply)
    assert reply["done_reason"] == ("length" if n_reply == 12 else "stop")
    # query_model reads the single line of a server that does not stream just as well
    assert ch07.query_model("Name a colour.", url=f"{url}/api/chat", options={"num_predict": 12}) == expected


def test_num_ctx_bounds_prompt_plus_reply(url, chat_model):
    _, n_prompt, _ = _greedy_reply(chat_model, "Count to ten.")
    status, lines = _post(url, _chat("Count to ten.", stream=False, options={"temperature": 0,
                                                                          "num_ctx": n_prompt + 3}))
    assert status == 200 and lines[0]["eval_count"] <= 3
    assert lines[0]["message"]["content"] == _greedy_reply(chat_model, "Count to ten.", max_new_tokens=3)[0]
    status, lines = _post(url, _chat("Count to ten.", options={"num_ctx": n_prompt}))
    assert status == 400 and "num_ctx" in lines[0]["error"]


def test_seed_and_temperature_are_honoured(url, chat_model):
    def sample(seed):
        _, lines = _post(url, _chat("Tell me a story.", stream=False,
                                    options={"seed": seed, "temperature": 1.0, "num_predict": 16}))
        return lines[0]["message"]["content"]

    first = sample(7)
    assert sample(7) == first  # the same seed draws the same tokens
    assert sample(8) != first  # 16 draws from a vocabulary of 151,936 tokens
    assert sample(7) != _greedy_reply(chat_model, "Tell me a story.", 16)[0]
    # the same draw as the OpenAI route with the same sampling settings: one generation path behind both
    body = {**_chat("Tell me a story."), "seed": 7, "temperature": 1.0, "top_p": 0.9, "max_tokens": 16}
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.loads(response.read())["choices"][0]["message"]["content"] == first


@pytest.mark.parametrize("body, status, message", [
    (_chat("hi", model="mistral"), 404, "model 'mistral' not found"),
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "'model' is required"),
    ({"model": "llama3"}, 400, "messages"),
    (_chat("hi", stream="yes"), 400, "'stream' must be a boolean"),
    (_chat("hi", options=[1]), 400, "'options' must be a JSON object"),
    (_chat("hi", options={"num_predict": 0}), 400, "num_predict"),
    (_chat("hi", options={"num_ctx": "big"}), 400, "num_ctx"),
    (_chat("hi", options={"temperature": 9}), 400, "temperature"),
    (_chat("hi", format="json"), 400, "'format' is not supported"),
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
])
def test_bad_requests_get_ollama_errors(url, body, status, message):
    got_status, lines = _post(url, body, raw=isinstance(body, bytes))
    assert got_status == status and message in lines[0]["error"]


def test_query_model_errors_name_the_problem(url):
    with pytest.raises(RuntimeError, match="HTTP 404: model 'llama3.2' not found"):
        ch07.query_model("hi", "llama3.2", f"{url}/api/chat")
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/api/chat"
    with pytest.raises(ConnectionError, match="could not reach .*ollama serve.*llms-from-scratch serve"):
        ch07.query_model("hi", url=closed)


def test_generate_model_scores_against_the_server(url, chat_model, capsys):
    """A random model does not answer with a number: each reply is printed and skipped, as in the book."""
    entries = [ENTRY, {**ENTRY, "model_response": "The car is fast."}]
    assert ch07.generate_model_scores(entries, "model_response", url=f"{url}/api/chat") == []
    captured = capsys.readouterr()
    assert "Scoring entries" in captured.err  # the book's progress bar
    printed = [line for line in captured.out.splitlines() if line.startswith("Could not convert score: ")]
    assert len(printed) == 2
    prompt = ("Given the input `" + ch07.format_input(ENTRY) + "` and correct output `" + ENTRY["output"]
              + "`, score the model response `" + ENTRY["model_response"] + "` on a scale from 0 to 100, where "
              "100 is the best score. Respond with the integer number only.")
    expected = _greedy_reply(chat_model, prompt)[0]
    assert captured.out.startswith(f"Could not convert score: {expected}\n")


def test_generate_model_scores_parses_integer_replies():
    """An Ollama-style stream that spells a number over several lines gives that score; other replies are skipped."""
    def stream(*pieces):
        lines = [{"model": "llama3", "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
        lines.append({"model": "llama3", "message": {"role": "assistant", "content": ""}, "done": True})
        return Reply(body="".join(json.dumps(line) + "\n" for line in lines).encode(),
                     headers=(("Content-Type", "application/x-ndjson"),))

    requests = []
    with serve({"/api/chat": stream("8", "7")}, requests) as base:
        scores = ch07.generate_model_scores([ENTRY, ENTRY], "model_response", url=f"{base}/api/chat")
    assert scores == [87, 87]
    sent = json.loads(requests[0][2])
    assert sent["model"] == "llama3" and sent["options"] == {"seed": 123, "temperature": 0, "num_ctx": 2048}
    assert sent["messages"][0]["role"] == "user" and "The car is as fast as a cheetah." in sent["messages"][0]["content"]
    with serve({"/api/chat": stream("Score: ", "90")}) as base:
        assert ch07.generate_model_scores([ENTRY], "model_response", url=f"{base}/api/chat") == []
