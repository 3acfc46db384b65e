"""Result files of the reference comparisons: written per implementation and seed, gathered in seed order (10
after 2, not before), and summarised as mean ± sample standard deviation."""

from __future__ import annotations

import json

import pytest

from llms_from_scratch.alignment.seed_runs import collect_runs, mean_std, print_runs_table, save_run


def _run(greedy: float) -> dict:
    return {"after": {"greedy_pass@1": greedy, "sampled_pass@1": greedy / 2, "sampled_pass@8": greedy},
            "rewards": [0.5] * 12, "kl": [0.1] * 12, "seconds": 3.0}


def test_runs_are_saved_and_collected_in_seed_order(tmp_path, capsys):
    before = {"greedy_pass@1": 0.6, "sampled_pass@1": 0.3}
    for implementation, seed, greedy in (("trl", 10, 0.9), ("trl", 2, 0.7), ("ours", 1, 0.8), ("ours_v2", 1, 0.5)):
        save_run(tmp_path, implementation, seed, _run(greedy), versions="v", samples=64, hyperparameters={"lr": 1},
                 before=before)
    record = json.loads((tmp_path / "results_trl_seed10.json").read_text())
    assert record["seed"] == 10 and record["cpu"] and record["threads"] >= 1 and record["before"] == before
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind

    runs = collect_runs(tmp_path)
    assert set(runs) == {"ours", "ours_v2", "trl"}  # an underscore in the name is kept
    assert runs["trl"]["seeds"] == [2, 10]
    assert [r["after"]["greedy_pass@1"] for r in runs["trl"]["runs"]] == [0.7, 0.9]

    print_runs_table(tmp_path, "PPO", ("KL", "kl"))
    out = capsys.readouterr().out
    assert "PPO on 64 sampled completions" in out and "trl    mean ± std over seeds [2, 10], greedy pass@1: 0.800 ± 0.141" in out


def test_mean_std_and_an_empty_folder(tmp_path):
    assert mean_std([]) == "-" and mean_std([0.25]) == "0.250"
    assert mean_std([1.0, 2.0, 3.0]) == "2.000 ± 1.000"
    with pytest.raises(SystemExit, match="run the comparison first"):
        print_runs_table(tmp_path, "GRPO", ("zero-var groups", "zero_variance"))
