"""``llms-from-scratch pretrain --compile``: the compiled run saves plain weights, resumes, and matches eager.

The test drives the real command line on a one-block model so that compiling stays cheap: inductor turns the
forward and the backward graph into C++ kernels with the system compiler (about 18 small files here). Two
inductor settings keep it fast without changing what is tested: no SIMD variants (saves probing the CPU's
instruction sets and compiling the larger vector code) and compilation in this process (no worker pool to start
on a two-core machine). The resumed session reuses the graphs compiled in the first one, so only one compile
happens. Inductor caches compiled graphs on disk, so a second run of this file is much faster than the first.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch._dynamo
import torch._inductor.config

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.cli import main
from llms_from_scratch.data import read_text

pytestmark = pytest.mark.usefixtures("one_thread")

# One block, 16 wide: the smallest model that still has every kind of layer the real one has. No dropout, so the
# compiled and the eager run draw no random numbers inside the model and can be compared step by step.
TINY_ARGS = ["--context-length", "16", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2", "--drop-rate", "0",
             "--batch-size", "2", "--learning-rate", "1e-3", "--warmup-steps", "1", "--eval-interval", "2",
             "--eval-iters", "1", "--sample-tokens", "2", "--quiet"]
STEPS = 3

# Compiled kernels fuse operations and sum in a different order (LayerNorm statistics, softmax, the matrix
# products' accumulation), so activations may differ from eager ones in the last bits: about 1e-6 relative in
# fp32. Three optimizer steps carry such differences into the loss at the 1e-6..1e-5 level; 1e-4 (about 100 units
# in the last place of a loss near 11) allows for that, while any real fault (other batches after resuming, a lost
# optimizer state, wrong weights) moves the loss by 1e-3 or more.
LOSS_ABS_TOL = 1e-4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "verdict.txt"
    path.write_text(read_text("the-verdict")[:6000], encoding="utf-8")
    return path


def pretrain_cli(corpus, out_dir, *extra: str) -> dict:
    """Run ``llms-from-scratch pretrain`` and return the checkpoint it wrote (loaded as the data layer would)."""
    assert main(["pretrain", "--data", str(corpus), "--out-dir", str(out_dir), "--steps", str(STEPS), *TINY_ARGS,
                 *extra]) == 0
    return torch.load(out_dir / "checkpoint.pth", weights_only=True)


def test_compiled_pretraining_saves_plain_weights_resumes_and_matches_eager(corpus, tmp_path, capsys):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._inductor.config.patch({"cpp.vec_isa_ok": False, "compile_threads": 1}):
        first = pretrain_cli(corpus, tmp_path / "compiled", "--compile", "--stop-at-step", "2")
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1, "the model was not compiled"

        # the state dict is the plain model's: no torch.compile prefix, and it loads strictly into an eager model
        assert first["step"] == 2
        assert not [key for key in first["model"] if "_orig_mod" in key]
        plain = GPTModel(first["config"])
        plain.load_state_dict(first["model"], strict=True)

        resumed = pretrain_cli(corpus, tmp_path / "compiled", "--compile", "--resume")
    eager = pretrain_cli(corpus, tmp_path / "eager")
    capsys.readouterr()

    assert resumed["step"] == eager["step"] == STEPS
    assert resumed["history"]["train_loss"][:2] == first["history"]["train_loss"]
    compiled_losses = resumed["history"]["train_loss"] + resumed["history"]["val_loss"]
    eager_losses = eager["history"]["train_loss"] + eager["history"]["val_loss"]
    assert len(compiled_losses) == len(eager_losses) == STEPS + 2  # validation at steps 2 and 3
    assert all(math.isclose(c, e, rel_tol=0, abs_tol=LOSS_ABS_TOL) for c, e in zip(compiled_losses, eager_losses)), \
        (compiled_losses, eager_losses)
