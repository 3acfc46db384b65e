"""The chapter 6/7 commands: finetune-classifier, finetune-instruct and evaluate, run in quick mode."""

import json
import socket

import pytest
from local_http import Reply, serve

from llms_from_scratch.cli import main


def chat_reply(content):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    return {"/v1/chat/completions": Reply(body=json.dumps(body).encode(), headers=(("Content-Type", "application/json"),))}


@pytest.mark.slow  # trains end to end
def test_finetune_classifier_quick_with_lora(tmp_path, capsys):
    assert main(["finetune-classifier", "--quick", "--trainable", "lora", "--lora-rank", "4", "--epochs", "1",
                 "--train-examples", "80", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    results = json.loads(out[out.rindex("\n{") + 1:])
    assert results["trainable"] == "lora" and results["train_examples"] == 80
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert (tmp_path / "classifier-lora-adapters.safetensors").is_file()
    assert (tmp_path / "data" / "test.csv").is_file()


@pytest.mark.slow  # trains end to end
def test_finetune_instruct_then_evaluate(tmp_path, capsys):
    assert main(["finetune-instruct", "--quick", "--epochs", "1", "--train-examples", "16", "--test-examples", "2",
                 "--max-new-tokens", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex("\n{") + 1:])
    assert summary["val_loss_after"] < summary["val_loss_before"]
    responses = tmp_path / "instruction-data-with-response.json"
    entries = json.loads(responses.read_text(encoding="utf-8"))
    assert len(entries) == 2 and all("model_response" in e for e in entries)

    assert main(["evaluate", str(responses), "--no-judge"]) == 0
    assert "ROUGE-L (mean over 2 responses)" in capsys.readouterr().out

    requests = []
    with serve(chat_reply("Score: 80"), requests) as url:
        assert main(["evaluate", str(responses), "--judge-url", url, "--judge-model", "judge-x",
                     "--judge-max-tokens", "8"]) == 0
    assert "judge 'judge-x': average score 80.00 over 2 of 2 responses" in capsys.readouterr().out
    sent = json.loads(requests[0][2])
    assert requests[0][1] == "/v1/chat/completions" and len(requests) == 2
    assert sent["model"] == "judge-x" and sent["max_tokens"] == 8
    assert f"Reference answer: {entries[0]['output']}" in sent["messages"][-1]["content"]

    with serve(chat_reply("I cannot grade this.")) as url:
        assert main(["evaluate", str(responses), "--judge-url", url]) == 1
    assert "no reply contained a score (first reply: 'I cannot grade this.')" in capsys.readouterr().err


def test_evaluate_reports_unreachable_judge_and_bad_files(tmp_path, capsys):
    responses = tmp_path / "r.json"
    responses.write_text(json.dumps([{"instruction": "i", "input": "", "output": "yes", "model_response": "yes"}]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["evaluate", str(responses), "--judge-url", f"http://127.0.0.1:{port}", "--retries", "0"]) == 1
    captured = capsys.readouterr()
    assert "exact match (1 references of at most 5 words): 1.0000" in captured.out
    assert "nothing is listening" in captured.err

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"output": "x"}]))
    assert main(["evaluate", str(bad), "--no-judge"]) == 1  # a file that does not fit is a runtime failure
    assert "--response-key" in capsys.readouterr().err


def test_finetune_commands_reject_bad_counts(tmp_path, capsys):
    for command in ("finetune-classifier", "finetune-instruct"):
        for argv, message in ((["--epochs", "0"], "--epochs: must be at least 1, got 0"),
                              (["--train-examples", "4"], "--train-examples must be at least the batch size (8)")):
            with pytest.raises(SystemExit) as info:  # usage errors: argparse's parser.error, status 2
                main([command, *argv, "--out", str(tmp_path)])
            assert info.value.code == 2
            err = capsys.readouterr().err
            assert err.startswith(f"llms-from-scratch {command}: error: ") and message in err
            assert len(err.splitlines()) == 1
