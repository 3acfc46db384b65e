"""``pretrain --strategy ddp/fsdp`` (issue 19): several ranks train as one process on the same global batch.

The torchrun tests start two gloo ranks on the CPU (``torchrun --standalone``: a free port is picked) and compare
them with ``pretrain`` run in this process, where ``--strategy ddp`` or ``fsdp`` forms a group of one rank. The
global batch is the same on both sides: 2 windows x 1 micro-batch x 2 ranks against 2 windows x 2 micro-batches x
1 rank. Dropout is off there, since two ranks cannot draw one process's dropout masks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.data import read_text
from llms_from_scratch.training.pretrain import PretrainArgs, ResumeError, model_config, pretrain
from llms_from_scratch.training.pretrain_args import check_values
from llms_from_scratch.training.token_loss import count_targets, micro_batch_loss
from llms_from_scratch.training.window_stream import DistributedWindows, WindowStream

TINY = {"context_length": 16, "emb_dim": 16, "n_layers": 2, "n_heads": 2, "drop_rate": 0.0, "batch_size": 2,
        "eval_interval": 2, "eval_iters": 1, "sample_tokens": 2, "quiet": True, "steps": 4, "device": "cpu",
        "learning_rate": 1e-3, "warmup_steps": 1}
LOSS_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "verdict.txt"
    path.write_text(read_text("the-verdict"), encoding="utf-8")
    return path


def torchrun(corpus, out_dir, nproc: int = 2, **options) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node=N -m llms_from_scratch.cli pretrain`` with TINY and ``options``."""
    argv = []
    for key, value in {**TINY, **options}.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [flag, str(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "llms_from_scratch.cli", "pretrain", "--data", str(corpus), "--out-dir", str(out_dir), *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def history(out_dir) -> dict:
    return torch.load(out_dir / "checkpoint.pth", weights_only=True)["history"]


def assert_losses_match(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    assert max(abs(a - b) for a, b in zip(got, want)) <= LOSS_TOLERANCE, (got, want)


@pytest.mark.slow  # one torchrun start (~15 s on two cores)
def test_ddp_on_two_ranks_equals_one_process(corpus, tmp_path):
    one = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "one"), strategy="ddp",
                                grad_accum_steps=2, **TINY))
    done = torchrun(corpus, tmp_path / "two", strategy="ddp")
    assert done.stdout.count("checkpoint:") == 1  # rank 0 alone reports

    two = history(tmp_path / "two")
    assert_losses_match(two["train_loss"], one["history"]["train_loss"])
    assert_losses_match(two["val_loss"], one["history"]["val_loss"])
    assert two["tokens_seen"] == one["history"]["tokens_seen"]
    assert one["history"]["train_loss"][-1] < one["history"]["train_loss"][0]


@pytest.mark.slow  # two torchrun starts
def test_fsdp_checkpoint_from_two_ranks_resumes_on_one_and_on_two(corpus, tmp_path):
    reference = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "ref"), strategy="fsdp",
                                      grad_accum_steps=2, **TINY))["history"]
    torchrun(corpus, tmp_path / "two", strategy="fsdp", stop_at_step=2)
    ckpt = torch.load(tmp_path / "two" / "checkpoint.pth", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["step"] == 2 and len(ckpt["rng"]) == 2
    # the full, unsharded state under the plain model's names
    GPTModel(model_config(PretrainArgs(data=str(corpus), out_dir="unused", **TINY))).load_state_dict(ckpt["model"])
    assert_losses_match(ckpt["history"]["train_loss"], reference["train_loss"][:2])

    shutil.copytree(tmp_path / "two", tmp_path / "one")
    torchrun(corpus, tmp_path / "two", strategy="fsdp", resume=True)
    assert_losses_match(history(tmp_path / "two")["train_loss"], reference["train_loss"])
    assert_losses_match(history(tmp_path / "two")["val_loss"], reference["val_loss"])

    resumed = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "one"), strategy="fsdp",
                                    grad_accum_steps=2, resume=True, **TINY))
    assert_losses_match(resumed["history"]["train_loss"], reference["train_loss"])
    assert resumed["history"]["tokens_seen"] == reference["tokens_seen"]


def test_fsdp_resume_is_bit_identical_with_dropout_and_single_checkpoints_stay_apart(corpus, tmp_path):
    args = {**TINY, "drop_rate": 0.1, "strategy": "fsdp"}
    straight = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "a"), **args))
    pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "b"), stop_at_step=2, **args))
    resumed = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "b"), resume=True, **args))
    assert resumed["history"]["train_loss"] == straight["history"]["train_loss"]
    a = torch.load(tmp_path / "a" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pth", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])

    # the optimizer and data position of one process and of several are kept differently: no mixing
    with pytest.raises(ResumeError, match="--strategy fsdp, this run asks for --strategy single"):
        pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "b"), resume=True, **{**args,
                                                                                             "strategy": "single"}))


def test_strategy_options_are_checked_before_torch_runs(monkeypatch):
    base = {"data": "d", "out_dir": "o", "steps": 1}
    with pytest.raises(ValueError, match="--strategy must be one of"):
        check_values(PretrainArgs(strategy="zero3", **base))
    with pytest.raises(ValueError, match="leave out --compile"):
        check_values(PretrainArgs(strategy="fsdp", compile=True, **base))
    with pytest.raises(ValueError, match="local rank"):
        check_values(PretrainArgs(strategy="ddp", device="cuda:1", **base))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="pass --strategy ddp or fsdp"):
        check_values(PretrainArgs(**base))
    check_values(PretrainArgs(strategy="fsdp", **base))


def write_numbered_tokens(path, n_tokens: int):
    np.arange(n_tokens, dtype=np.uint16).tofile(path)  # token i is i: a window is known by its first token
    return path


@pytest.mark.parametrize(("world_size", "batch_size"), [(1, 3), (2, 2), (3, 4)])
def test_sampler_reads_every_window_once_per_epoch_across_ranks(tmp_path, world_size, batch_size):
    path = write_numbered_tokens(tmp_path / "tokens.bin", 16 * 50 + 2)  # 50 windows of 16 tokens (+1 target, +1 held out)
    ranks = [DistributedWindows(path, 16, batch_size, rank, world_size, "train", val_fraction=1e-9, seed=5)
             for rank in range(world_size)]
    n_windows = len(ranks[0])
    assert n_windows == 50
    seen: list[int] = []
    while len(seen) < 2 * n_windows:  # two epochs, the second one's batches crossing the boundary
        for windows in ranks:
            x, y = windows.next_batch()
            assert x.shape == y.shape == (batch_size, 16) and torch.equal(x[:, 1:], y[:, :-1])
            seen += (x[:, 0] // 16).tolist()
    assert sorted(seen[:n_windows]) == list(range(n_windows))  # epoch 0: every window exactly once
    assert sorted(seen[n_windows : 2 * n_windows]) == list(range(n_windows))  # epoch 1 too
    assert seen[:n_windows] != seen[n_windows : 2 * n_windows]  # each epoch shuffled anew
    assert len({w.position for w in ranks}) == 1  # every rank agrees on the position


def test_sampler_continues_on_another_number_of_ranks_without_gap_or_repeat(tmp_path):
    path = write_numbered_tokens(tmp_path / "tokens.bin", 16 * 30 + 2)
    two = [DistributedWindows(path, 16, 2, rank, 2, "train", val_fraction=1e-9) for rank in range(2)]
    seen = [int(i) for _ in range(3) for w in two for i in w.next_batch()[0][:, 0] // 16]
    three = [DistributedWindows(path, 16, 2, rank, 3, "train", val_fraction=1e-9) for rank in range(3)]
    for windows in three:
        windows.load_state_dict(two[0].state_dict())
    while len(seen) < 30:
        seen += [int(i) for w in three for i in w.next_batch()[0][:, 0] // 16]
    assert sorted(seen[:30]) == list(range(30))
    assert WindowStream(30, 0).take(25, 10)[5:] == WindowStream(30, 0).order(1)[:5].tolist()


def test_accumulation_with_token_count_normalisation_equals_the_full_batch():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 11)
    hidden = torch.randn(4, 6, 8)  # (batch, tokens, features)
    targets = torch.randint(0, 11, (4, 6))
    targets[0, 1:] = -100  # ragged rows: 1, 6, 3 and 5 counted targets
    targets[2, 3:] = -100
    targets[3, 5:] = -100

    def mean_loss(rows):
        return torch.nn.functional.cross_entropy(head(hidden[rows]).flatten(0, 1), targets[rows].flatten())

    def grads():
        out = [p.grad.clone() for p in head.parameters()]
        head.zero_grad()
        return out

    mean_loss(slice(0, 4)).backward()
    full = grads()

    micro = [slice(0, 1), slice(1, 2), slice(2, 4)]  # micro-batches of different sizes and target counts
    total = count_targets(targets)
    assert total == 15
    for rows in micro:
        micro_batch_loss(mean_loss(rows), count_targets(targets[rows]), total).backward()
    accumulated = grads()
    assert all(torch.allclose(a, f, rtol=0, atol=1e-7) for a, f in zip(accumulated, full))

    # two ranks whose gradients are averaged, as DDP and FSDP do
    per_rank = []
    for rank_micro in ([slice(0, 1), slice(1, 2)], [slice(2, 4)]):
        for rows in rank_micro:
            micro_batch_loss(mean_loss(rows), count_targets(targets[rows]), total, world_size=2).backward()
        per_rank.append(grads())
    averaged = [(a + b) / 2 for a, b in zip(*per_rank)]
    assert all(torch.allclose(a, f, rtol=0, atol=1e-7) for a, f in zip(averaged, full))

    # the naive mean of micro-batch means weighs the one-target row like the six-target one
    for rows in micro:
        (mean_loss(rows) / len(micro)).backward()
    naive = grads()
    assert max((n - f).abs().max().item() for n, f in zip(naive, full)) > 1e-3


@pytest.mark.slow  # three torchrun starts
def test_two_rank_fsdp_resume_with_dropout_is_bit_identical(corpus, tmp_path):
    """Each rank's random state is saved and restored, so dropout draws the same masks after a resume."""
    torchrun(corpus, tmp_path / "straight", strategy="fsdp", drop_rate=0.1)
    torchrun(corpus, tmp_path / "resumed", strategy="fsdp", drop_rate=0.1, stop_at_step=2)
    torchrun(corpus, tmp_path / "resumed", strategy="fsdp", drop_rate=0.1, resume=True)
    straight, resumed = history(tmp_path / "straight"), history(tmp_path / "resumed")
    assert resumed["train_loss"] == straight["train_loss"]
    assert resumed["val_loss"] == straight["val_loss"]
    a = torch.load(tmp_path / "straight" / "checkpoint.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pth", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
