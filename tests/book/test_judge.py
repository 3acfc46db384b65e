"""The LLM-judge client against real HTTP servers on 127.0.0.1, and the judge-free metrics by hand."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llms_from_scratch.evaluation import (
    JudgeClient,
    JudgeConnectionError,
    JudgeResponseError,
    JudgeTimeoutError,
    chat_completions_url,
    exact_match,
    find_score,
    judge_free_metrics,
    judge_messages,
    judge_prompt,
    judge_responses,
    judge_scores,
    lcs_length,
    parse_score,
    rouge_l,
    summarize_scores,
)


def completion(content):
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


class ScriptedServer:
    """A real HTTP server whose replies follow a script: one (status, body, delay) per request, the last repeats.

    A delay is seconds to wait, or a ``threading.Event`` that holds the reply back until the test sets it.
    """

    def __init__(self, script):
        self.script, self.requests = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, json.loads(body), dict(self.headers)))
                status, reply, delay = outer.script[min(len(outer.requests), len(outer.script)) - 1]
                if isinstance(delay, threading.Event):
                    delay.wait(timeout=60)  # held until the test releases it (the timeout only guards against a hang)
                else:
                    time.sleep(delay)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(*script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_chat_sends_openai_request_and_returns_content(serve):
    server = serve((200, completion("87"), 0))
    client = JudgeClient(url=server.url, model="judge-model", api_key="secret", retries=0)
    assert client.ask("Score this.") == "87"
    path, payload, headers = server.requests[0]
    assert path == "/v1/chat/completions"
    assert payload["model"] == "judge-model" and payload["temperature"] == 0.0
    assert payload["messages"] == [{"role": "user", "content": "Score this."}]
    assert headers["Authorization"] == "Bearer secret"


def test_server_errors_are_retried(serve):
    server = serve((500, b"overloaded", 0), (503, b"busy", 0), (200, completion("ok"), 0))
    client = JudgeClient(url=server.url, retries=2, backoff=0.01)
    assert client.ask("hi") == "ok"
    assert len(server.requests) == 3


def test_retries_run_out_with_the_last_error(serve):
    server = serve((500, b"overloaded", 0))
    with pytest.raises(JudgeResponseError, match="HTTP 500.*overloaded"):
        JudgeClient(url=server.url, retries=1, backoff=0.01).ask("hi")
    assert len(server.requests) == 2


def test_client_errors_are_not_retried_and_name_the_model(serve):
    server = serve((404, {"error": "model 'nope' not found"}, 0))
    with pytest.raises(JudgeResponseError, match="(?s)HTTP 404.*model name 'nope'"):
        JudgeClient(url=server.url, model="nope", retries=3, backoff=0.01).ask("hi")
    assert len(server.requests) == 1


def test_timeout_gives_clear_error(serve):
    answer = threading.Event()  # the server answers only once the client has given up, so waiting would get "late"
    server = serve((200, completion("late"), answer))
    try:
        with pytest.raises(JudgeTimeoutError, match=r"did not answer within 0.2 s \(2 attempt"):
            JudgeClient(url=server.url, timeout=0.2, retries=1, backoff=0.01).ask("hi")
    finally:
        answer.set()
    assert len(server.requests) == 2


def test_connection_refused_says_nothing_is_listening():
    with socket.socket() as s:  # find a free port, then close it so nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(JudgeConnectionError, match=rf"nothing is listening at http://127.0.0.1:{port}/v1/chat") as e:
        JudgeClient(url=f"http://127.0.0.1:{port}", retries=1, backoff=0.01).ask("hi")
    assert "ollama serve" in str(e.value) and "LLMS_JUDGE_URL" in str(e.value)


@pytest.mark.parametrize("body, message", [
    (b"<html>not json</html>", "did not answer with JSON"),
    ({"choices": []}, "no choices"),
    ({"result": "87"}, "no choices"),
    ({"choices": [{"message": {"content": None}}]}, "not text"),
])
def test_malformed_replies(serve, body, message):
    server = serve((200, body, 0))
    with pytest.raises(JudgeResponseError, match=message):
        JudgeClient(url=server.url, retries=0).ask("hi")


def test_url_forms():
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    with pytest.raises(ValueError, match="http://"):
        chat_completions_url("localhost:11434")


def test_parse_score():
    assert parse_score("85") == 85
    assert parse_score("Score: 250? No: 90.") == 90
    with pytest.raises(JudgeResponseError, match="no score"):
        parse_score("excellent")
    assert find_score("The student answer is 100") == 100
    assert find_score("excellent") is None and find_score("-") is None and find_score("999") is None


def test_summarize_scores_counts_unparsed_replies():
    assert summarize_scores([80, None, 40]) == {"mean": 60.0, "parsed": 2, "unparsed": 1}
    assert summarize_scores([None]) == {"mean": None, "parsed": 0, "unparsed": 1}


def test_rouge_l_and_exact_match_by_hand():
    assert lcs_length("abcbdab", "bdcaba") == 4
    # LCS of the words is "the cat on the mat" (5 words); precision = recall = 5/6
    assert rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("a b", "c d") == 0.0
    assert rouge_l("", "") == 1.0 and rouge_l("x", "") == 0.0
    # precision 2/2, recall 2/4 -> F1 = 2 * 1 * 0.5 / 1.5
    assert rouge_l("big dog", "the big brown dog") == pytest.approx(2 / 3)
    assert exact_match("The Pacific Ocean.", "pacific ocean")
    assert not exact_match("Atlantic", "Pacific")


ENTRIES = [
    {"instruction": "Name the largest ocean.", "input": "", "output": "The Pacific Ocean.",
     "model_response": "The Pacific Ocean."},
    {"instruction": "Opposite of hot?", "input": "", "output": "Cold.", "model_response": ""},
    {"instruction": "Spell it.", "input": "ocassion", "output": "occasion", "model_response": "ocasion"},
]


def test_end_to_end_scoring_keeps_replies_and_counts_unparsed(serve):
    server = serve((200, completion("100"), 0), (200, completion("The student answer is 0."), 0),
                   (200, completion("I am not sure."), 0))
    judgements = judge_responses(ENTRIES, JudgeClient(url=server.url, model="m", retries=0), max_tokens=10,
                                 progress=False)
    assert [j.score for j in judgements] == [100, 0, None]
    assert judgements[2].reply == "I am not sure."
    _, payload, _ = server.requests[1]
    assert payload["max_tokens"] == 10
    assert payload["messages"] == judge_messages(ENTRIES[1])
    assert payload["messages"][0]["role"] == "system"
    assert "Reference answer: Cold.\nStudent answer: (no answer)\n" in payload["messages"][1]["content"]
    assert summarize_scores([j.score for j in judgements])["unparsed"] == 1
    metrics = judge_free_metrics(ENTRIES)
    assert metrics["n"] == 3 and metrics["n_short"] == 3 and metrics["exact_match"] == pytest.approx(1 / 3)


def test_judge_scores_and_task_option(serve):
    server = serve((200, completion("Score: 75"), 0))
    assert judge_scores(ENTRIES[:1], JudgeClient(url=server.url, retries=0), progress=False) == [75]
    assert "Task:" not in judge_prompt(ENTRIES[2])
    assert "Task: Spell it.\nocassion\nReference answer: occasion" in judge_prompt(ENTRIES[2], include_task=True)
