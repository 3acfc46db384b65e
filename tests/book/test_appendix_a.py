"""Appendix A: the MLP and dataset, and DDP training under torchrun matching a single process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llms_from_scratch.appendix_a import (
    NeuralNetwork,
    ToyDataset,
    compute_accuracy,
    make_toy_data,
    prepare_dataloader,
    train_epochs,
)
from llms_from_scratch.checkpoints import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "appendix-A" / "01_main-chapter-code" / "DDP-script.py"


def test_mlp_parameter_count():
    model = NeuralNetwork(50, 3)
    # (50*30 + 30) + (30*20 + 20) + (20*3 + 3)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2213


def test_training_separates_the_toy_data():
    torch.manual_seed(123)
    X, y = make_toy_data(32)
    dataset = ToyDataset(X, y)
    loader = prepare_dataloader(dataset, batch_size=4)
    model = NeuralNetwork(2, 2)
    losses = train_epochs(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), num_epochs=3)
    assert losses[-1] < losses[0]
    assert compute_accuracy(model, torch.utils.data.DataLoader(dataset, batch_size=8)) >= 0.9  # the blobs overlap a little


@pytest.mark.slow  # trains end to end, in two torchrun processes
def test_ddp_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    epochs, per_process_batch, lr, n, seed = 2, 4, 0.5, 32, 7
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun (installed with torch) was not found"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", str(SCRIPT), "--backend=gloo", f"--epochs={epochs}",
         f"--batch-size={per_process_batch}", f"--lr={lr}", f"--num-examples={n}", f"--seed={seed}",
         f"--checkpoint={tmp_path / 'ddp.pth'}"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "World size 2" in result.stdout and result.stdout.count("Epoch ") == epochs  # rank 0 logs alone

    # the same run in this process: one worker taking the whole global batch each step
    torch.manual_seed(seed)
    X, y = make_toy_data(n, seed=seed)
    loader = prepare_dataloader(ToyDataset(X, y), batch_size=2 * per_process_batch, seed=seed)
    reference = NeuralNetwork(2, 2)
    train_epochs(reference, loader, torch.optim.SGD(reference.parameters(), lr=lr), epochs)

    ddp_model = NeuralNetwork(2, 2)
    checkpoint = load_checkpoint(tmp_path / "ddp.pth", ddp_model)
    assert checkpoint["world_size"] == 2
    for (name, a), b in zip(reference.state_dict().items(), ddp_model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=f"{name} differs between DDP and one process")


def test_notebook_definitions_match_package():
    from notebook_defs import load_notebook_definitions

    from llms_from_scratch import appendix_a

    nb = load_notebook_definitions(SCRIPT.parent / "code-part1.ipynb")
    torch.manual_seed(123)
    ours = nb.NeuralNetwork(50, 3)
    torch.manual_seed(123)
    theirs = appendix_a.NeuralNetwork(50, 3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    X, y = make_toy_data(8)
    ds_nb, ds_pkg = nb.ToyDataset(X, y), appendix_a.ToyDataset(X, y)
    assert len(ds_nb) == len(ds_pkg) == 8
    assert all(torch.equal(a, b) for a, b in zip(ds_nb[3], ds_pkg[3]))
    loader = torch.utils.data.DataLoader(ds_pkg, batch_size=4)
    model = appendix_a.NeuralNetwork(2, 2)
    assert nb.compute_accuracy(model, loader) == appendix_a.compute_accuracy(model, loader)
