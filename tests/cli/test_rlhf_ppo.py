"""``rlhf-ppo``: a tiny run writes its results, samples and plot, and a run stopped and resumed equals an
uninterrupted one."""

import json

import pytest
import torch

from llms_from_scratch.cli import main

TINY = ["--emb-dim", "16", "--n-layers", "1", "--sft-max-steps", "4", "--sft-target", "1", "--steps", "4",
        "--prompts-per-step", "4", "--minibatch-size", "2", "--ppo-epochs", "2", "--eval-interval", "2",
        "--num-test", "10", "--eval-samples", "2", "--lr", "1e-2", "--quiet"]


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.slow  # three short runs: about a minute and a half on 2 busy cores
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, capsys):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["rlhf-ppo", "--out", str(straight), *TINY]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["before"]) == {"greedy_pass@1", "sampled_pass@1", "sampled_pass@2"}
    assert len(summary["samples_before"]) == len(summary["samples_after"]) == 8
    assert all("=" in line for line in summary["samples_after"])
    assert (straight / "ppo.png").is_file() and (straight / "results.json").is_file()
    assert any(key.startswith("value_head.") for key in _weights(straight / "ppo.pth"))

    assert main(["rlhf-ppo", "--out", str(resumed), *TINY, "--stop-at-step", "2"]) == 0
    assert "--resume" in json.loads(capsys.readouterr().out)["note"]
    assert not (resumed / "results.json").exists()
    assert main(["rlhf-ppo", "--out", str(resumed), *TINY, "--resume"]) == 0
    capsys.readouterr()

    a, b = _weights(straight / "ppo.pth"), _weights(resumed / "ppo.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    results_a = json.loads((straight / "results.json").read_text())
    results_b = json.loads((resumed / "results.json").read_text())
    for key in ("before", "after", "samples_after"):
        assert results_a[key] == results_b[key]
    for key in ("reward", "kl", "policy_loss", "value_loss"):
        assert results_a["history"][key] == results_b["history"][key]


def test_an_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["rlhf-ppo", "--out", str(out), *TINY, "--stop-at-step", "2"]) == 0
    assert main(["rlhf-ppo", "--out", str(out), *TINY]) == 1
    assert "--resume" in capsys.readouterr().err


def test_wrong_settings_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as usage:
        main(["rlhf-ppo", "--out", str(tmp_path / "x"), *TINY, "--sft-target", "2"])
    assert usage.value.code == 2
    assert "share of problems" in capsys.readouterr().err
    assert main(["rlhf-ppo", "--out", str(tmp_path / "y"), *TINY, "--lam", "2"]) == 1
    err = capsys.readouterr().err
    assert "lam" in err and len(err.strip().splitlines()) == 1
