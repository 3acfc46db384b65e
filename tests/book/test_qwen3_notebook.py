"""ch05/11_qwen3/qwen3.ipynb teaches exactly the package's ``llms_from_scratch.qwen3``.

Every definition the notebook shares with the module (configs, classes, functions) has the same syntax tree,
docstrings included; the notebook's classes, run, give the package's state dicts and outputs.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import nbformat
import pytest
import torch
from notebook_defs import load_notebook_definitions

import llms_from_scratch.qwen3 as book

pytestmark = pytest.mark.usefixtures("one_thread")

NOTEBOOK = Path(__file__).resolve().parents[2] / "ch05" / "11_qwen3" / "qwen3.ipynb"
# the download helpers are plumbing over huggingface_hub; the notebook imports them instead of defining them
TAUGHT = [name for name in book.__all__ if not name.startswith("download_")] + ["_hf_names", "_few"]
CFG = {"vocab_size": 300, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "hidden_dim": 48,
       "head_dim": 16, "qk_norm": True, "n_kv_groups": 2, "rope_base": 1_000_000.0, "dtype": torch.float32}
MOE = {**CFG, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16}


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def test_notebook_definitions_are_the_package_source():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    ours: dict[str, ast.stmt] = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            ours.update(_top_level(ast.parse(cell.source)))
    package = _top_level(ast.parse(inspect.getsource(book)))
    for name in TAUGHT:
        assert name in ours, f"the notebook does not define {name}"
        assert ast.dump(ours[name]) == ast.dump(package[name]), f"{name} differs from llms_from_scratch.qwen3"


@pytest.fixture(scope="module")
def nb():
    return load_notebook_definitions(NOTEBOOK)


@pytest.mark.parametrize("cfg", [CFG, MOE], ids=["dense", "moe"])
def test_notebook_model_equals_the_package_model(nb, cfg):
    torch.manual_seed(123)
    ours = nb.Qwen3Model(cfg).eval()
    torch.manual_seed(123)
    theirs = book.Qwen3Model(cfg).eval()
    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert sd_ours.keys() == sd_theirs.keys() and all(torch.equal(sd_ours[k], sd_theirs[k]) for k in sd_ours)
    ids = torch.randint(0, cfg["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours(ids), theirs(ids))
    # the package's weights, named as on the hub, fill a fresh notebook model through the notebook's loader
    params = {name: p.detach().clone() for name, p in book._hf_names(theirs).items()}
    torch.manual_seed(7)
    fresh = nb.Qwen3Model(cfg).eval()
    nb.load_weights_into_qwen(fresh, cfg, params)
    with torch.no_grad():
        assert torch.equal(fresh(ids), theirs(ids))


def test_notebook_configs_are_the_package_configs(nb):
    for name in book.__all__:
        if name.isupper():
            assert getattr(nb, name) == getattr(book, name), name
