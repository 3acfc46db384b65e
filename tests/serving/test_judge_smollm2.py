"""The chapter 7 judge end to end: this project's server runs SmolLM2-135M-Instruct in a child process and
``JudgeClient`` scores a response through real HTTP, as the notebook and ``llms-from-scratch evaluate`` do."""

from __future__ import annotations

import json
import urllib.request

import pytest

from llms_from_scratch.background_server import ServerStartError, serve_in_background
from llms_from_scratch.cli import main
from llms_from_scratch.data import AssetUnavailableError, fetch
from llms_from_scratch.evaluation import JudgeClient, JudgeConnectionError, find_score, judge_responses

ENTRY = {"instruction": "What is the capital of France?", "input": "", "output": "The capital of France is Paris.",
         "model_response": "Paris is the capital of France."}


@pytest.fixture(scope="module")
def smollm2_available():
    try:
        fetch("smollm2-135m-instruct-gguf", quiet=True)
    except AssetUnavailableError as exc:
        pytest.skip(f"the SmolLM2-135M-Instruct checkpoint is not in the mirror or cache and cannot be "
                    f"downloaded here: {str(exc).splitlines()[0]}")


@pytest.mark.slow
def test_smollm2_judge_scores_a_response_over_http(smollm2_available):
    with serve_in_background("smollm2-135m-instruct", threads=1, startup_timeout=120) as server:
        with urllib.request.urlopen(f"{server.url}/v1/models", timeout=5) as response:
            assert [m["id"] for m in json.loads(response.read())["data"]] == ["smollm2-135m-instruct"]
        client = JudgeClient(url=server.url, model=server.model, timeout=60, retries=0)
        first, again = (judge_responses([ENTRY], client, max_tokens=8, progress=False)[0] for _ in range(2))
    # the reply is the model's own text: non-empty, and the same twice under greedy decoding with a fixed seed
    assert first.reply.strip() and first == again
    # the documented rule: the first integer 0..100 in the reply, else None (unparsed)
    assert first.score == find_score(first.reply)
    assert first.score is None or (isinstance(first.score, int) and 0 <= first.score <= 100)
    # the server was stopped when the block ended
    assert server.process.poll() is not None
    with pytest.raises(JudgeConnectionError, match="nothing is listening"):
        client.retries = 0
        client.ask("still there?")


def test_a_server_that_cannot_start_reports_its_output(tmp_path, monkeypatch, capsys):
    with pytest.raises(ServerStartError, match="(?s)exited with code 1.*unknown model 'no-such-model'"):
        with serve_in_background("no-such-model", startup_timeout=60):
            pass
    # the evaluate command starts the project's server when no judge URL is set, and reports when it cannot
    monkeypatch.delenv("LLMS_JUDGE_URL", raising=False)
    responses = tmp_path / "r.json"
    responses.write_text(json.dumps([ENTRY]), encoding="utf-8")
    assert main(["evaluate", str(responses), "--judge-model", "no-such-model"]) == 1
    assert "could not start the local judge" in capsys.readouterr().err
