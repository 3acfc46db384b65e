"""The decode set-up (nn/decode_layout.py, nn/autotune.py) changes which kernels multiply the weights, never what
the model computes, and never the model it was given.

No test here asserts a time: which kernel wins is the machine's business. What is tested is that every
candidate gives the plain model's logits and tokens, that the autotuner only ever picks candidates and keeps its
choice in the cache file, and that the structure stays honest (no class swaps, no re-pointed tensors).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_threads import single_thread

import llms_from_scratch
from llms_from_scratch.generation import generate, left_pad
from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.nn import DecodePlan, autotune, build_decoding_model, decode_layout, prepare_for_decoding
from llms_from_scratch.nn.decode_layout import (
    KERNELS,
    PLAIN,
    SEPARATE,
    FusedGateUpSwiGLU,
    FusedQKVAttention,
    TunedLinear,
    available_kernels,
    decode_sites,
    kernel_candidates,
)

SMALL = dict(vocab_size=128, emb_dim=32, n_layers=2, hidden_dim=48, context_length=64)
CONFIGS = {
    "qwen3": get_config("qwen3-0.6b", **SMALL, n_heads=4, n_kv_groups=2, head_dim=8),  # GQA, QK-norm, SwiGLU
    "gpt2": get_config("gpt2-124m", **SMALL, n_heads=4),  # biases everywhere, GELU MLP, tied head
}
PROMPTS = [[3, 14, 15, 92, 65, 35, 89, 79], [2, 71, 82], [81, 82, 84, 59, 4]]
NEW_TOKENS = 6
READ_CPU_WAIT = autotune.cpu_wait  # the fixture below replaces it


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(autouse=True)
def _quick_races(monkeypatch):
    """Race for a few rounds only, and measure even on a busy machine: these tests check choices, not speed."""
    monkeypatch.setattr(autotune, "KIND_BUDGET_S", 0.0)
    monkeypatch.setattr(autotune, "STEP_BUDGET_S", 0.0)
    monkeypatch.setattr(autotune, "cpu_wait", lambda: None)


def _model(name: str = "qwen3") -> nn.Module:
    torch.manual_seed(0)
    return build_model(CONFIGS[name]).eval()


def uniform_plan(model: nn.Module, rows: int, kernel: str, fuse: bool) -> DecodePlan:
    """Every linear layer on ``kernel``; every projection group stacked (on ``kernel``) or left separate."""
    linears, groups = decode_sites(model)
    choices = {key: kernel for key in linears} | {key: kernel if fuse else SEPARATE for key in groups}
    return DecodePlan(rows, torch.float32, choices)


def decode_logits(model: nn.Module, prompts: list[list[int]]) -> torch.Tensor:
    """Logits of the prefill and of three single-token decode steps (the rows the tuned kernels run on)."""
    ids, mask = left_pad(prompts)
    cache = model.new_cache(len(prompts), ids.shape[1] + 3)
    steps = []
    with torch.no_grad():
        steps.append(model(ids, mask, cache=cache, last_token_only=True))
        for token in (5, 17, 42):
            step = torch.full((len(prompts), 1), token)
            steps.append(model(step, torch.ones_like(step), cache=cache, last_token_only=True))
    return torch.cat(steps, dim=1)  # (batch, 4, vocab)


PATHS = [(kernel, fuse) for kernel in available_kernels() for fuse in (False, True)]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize(("kernel", "fuse"), PATHS)
def test_every_candidate_gives_the_plain_logits_and_tokens(name, rows, kernel, fuse):
    plain = _model(name)
    prompts = PROMPTS[:rows]
    fast = build_decoding_model(plain, uniform_plan(plain, rows, kernel, fuse))
    if kernel != PLAIN or fuse:
        assert fast is not plain
    torch.testing.assert_close(decode_logits(fast, prompts), decode_logits(plain, prompts), atol=1e-5, rtol=1e-5)
    ids, mask = left_pad(prompts)
    assert generate(fast, ids, NEW_TOKENS, attention_mask=mask).tolist() == generate(
        plain, ids, NEW_TOKENS, attention_mask=mask).tolist()


def test_the_decoding_model_is_built_from_modules_and_leaves_the_model_alone():
    plain = _model("qwen3")
    before = {name: (type(m), m) for name, m in plain.named_modules()}
    state = {name: t.clone() for name, t in plain.state_dict().items()}
    fast = build_decoding_model(plain, uniform_plan(plain, 1, "split", fuse=True))
    assert {name: (type(m), m) for name, m in plain.named_modules()} == before  # no class swap, no replacement
    for name, t in plain.state_dict().items():
        assert torch.equal(t, state[name]), name
    att, ff = fast.trf_blocks[0].att, fast.trf_blocks[0].ff
    assert type(att) is FusedQKVAttention and type(ff) is FusedGateUpSwiGLU
    assert type(fast.out_head) is TunedLinear and fast.out_head.kernel == "split"
    # the weights that are not stacked are the plain model's own tensors, shared
    assert fast.out_head.weight is plain.out_head.weight
    assert att.q_norm.scale is plain.trf_blocks[0].att.q_norm.scale
    assert att.out_proj.weight is plain.trf_blocks[0].att.out_proj.weight
    # the stacked weight holds q, k and v in that order
    ref = plain.trf_blocks[0].att
    assert torch.equal(att.qkv.weight, torch.cat([ref.W_query.weight, ref.W_key.weight, ref.W_value.weight]))


def test_a_plain_plan_returns_the_model_itself():
    plain = _model()
    assert build_decoding_model(plain, uniform_plan(plain, 1, PLAIN, fuse=False)) is plain
    assert build_decoding_model(plain, DecodePlan(1, torch.float32)) is plain


@pytest.mark.parametrize("kernel", available_kernels())
@pytest.mark.parametrize("out_features", [1, 3, 8, 130])  # fewer rows than split parts, even, and a remainder
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 2, 4, 6, 40])
def test_kernels_equal_f_linear(kernel, out_features, bias, rows):
    torch.manual_seed(0)
    layer = nn.Linear(24, out_features, bias=bias)
    x = torch.randn(rows, 24)
    with torch.no_grad():
        torch.testing.assert_close(KERNELS[kernel](x, layer.weight, layer.bias), layer(x), atol=1e-5, rtol=1e-5)


def test_split_is_offered_for_few_rows_only():
    w = torch.zeros(16, 8)
    assert "split" in kernel_candidates(4, w) and "split" not in kernel_candidates(5, w)
    assert kernel_candidates(1, torch.zeros(16, 8, device="meta")) == [PLAIN]  # not a CPU tensor
    assert all(name in available_kernels() for name in kernel_candidates(1, w))


def test_tuned_linear_takes_f_linear_outside_its_rows_and_dtype():
    torch.manual_seed(0)
    layer = nn.Linear(24, 8)
    tuned = TunedLinear.from_linear(layer, "split", rows=2)
    with torch.no_grad():
        for shape in [(2, 24), (1, 2, 24), (5, 24)]:  # its rows (any leading shape) and others
            x = torch.randn(*shape)
            torch.testing.assert_close(tuned(x), layer(x), atol=1e-6, rtol=1e-6)
        tuned64 = copy.deepcopy(tuned).to(torch.float64)  # chosen for float32: float64 takes F.linear
        x = torch.randn(2, 24, dtype=torch.float64)
        assert torch.equal(tuned64(x), F.linear(x, tuned64.weight, tuned64.bias))
    x = torch.randn(2, 24)
    assert torch.equal(tuned(x), F.linear(x, layer.weight, layer.bias))  # autograd on
    with pytest.raises(ValueError, match="not available"):
        TunedLinear.from_linear(layer, "no-such-kernel", rows=1)


def test_training_never_reaches_a_tuned_kernel(monkeypatch):
    """With autograd on every layer takes F.linear, so gradients flow and no private op runs in training."""
    plain = _model()
    fast = build_decoding_model(plain, uniform_plan(plain, 1, "split", fuse=True))

    def refuse(*args):
        raise AssertionError("a tuned kernel ran with autograd on")

    monkeypatch.setitem(KERNELS, "split", refuse)
    fast.train()
    ids = torch.tensor([PROMPTS[0]])
    loss = F.cross_entropy(fast(ids)[0, :-1], ids[0, 1:])
    loss.backward()
    assert fast.trf_blocks[0].att.qkv.weight.grad is not None
    assert fast.out_head.weight.grad is not None


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_dtype_change_leaves_no_stale_copies(dtype):
    plain = _model()
    expected_model = copy.deepcopy(plain).to(dtype)
    fast = build_decoding_model(plain, uniform_plan(plain, 1, "split", fuse=True)).to(dtype)
    assert {p.dtype for p in fast.parameters()} == {dtype}  # the stacked blocks moved with everything else
    floats = [t for t in fast.state_dict(keep_vars=True).values() if t.is_floating_point()]
    assert all(t.dtype == dtype for t in floats)
    ids = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        got, expected = fast(ids), expected_model(ids)
    # the same products, now all by F.linear in `dtype` (the kernels were chosen for float32); in bfloat16 the
    # stacked q/k/v product may round differently from three separate ones
    tol = 1e-9 if dtype == torch.float64 else 2e-2
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)


def _tune(model, tmp_path, rows=1):
    return autotune.tune_decoding(model, rows, cache_file=tmp_path / "kernels.json")


@pytest.mark.parametrize("rows", [1, 3])
def test_autotune_picks_candidates_and_the_result_decodes_like_plain(tmp_path, rows):
    plain = _model()
    plan = _tune(plain, tmp_path, rows)
    linears, groups = decode_sites(plain)
    assert set(plan.choices) == set(linears) | set(groups)  # a choice for every kind of layer
    for key in linears:
        assert plan.choices[key] in kernel_candidates(rows, linears[key][0].weight)
    for key in groups:
        assert plan.choices[key] in [SEPARATE, *available_kernels()]
    fast = prepare_for_decoding(plain, rows, cache_file=tmp_path / "kernels.json")
    prompts = PROMPTS[:rows]
    torch.testing.assert_close(decode_logits(fast, prompts), decode_logits(plain, prompts), atol=1e-5, rtol=1e-5)
    ids, mask = left_pad(prompts)
    assert generate(fast, ids, NEW_TOKENS, attention_mask=mask).tolist() == generate(
        plain, ids, NEW_TOKENS, attention_mask=mask).tolist()


def test_the_choice_is_stored_and_reused(tmp_path, monkeypatch):
    plain = _model()
    plan = _tune(plain, tmp_path)
    stored = json.loads((tmp_path / "kernels.json").read_text())
    machine = stored["machines"][autotune.machine_key()]
    assert any(key.endswith("rows=1 float32") for key in machine["kinds"])
    [entry] = machine["models"].values()
    assert entry["choices"] == plan.choices

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again although the cache holds the choice")

    real_race = autotune._race
    monkeypatch.setattr(autotune, "_race", no_measuring)
    assert _tune(copy.deepcopy(plain), tmp_path) == plan
    # another batch size is another decision
    monkeypatch.setattr(autotune, "_race", real_race)
    _tune(plain, tmp_path, rows=2)
    stored = json.loads((tmp_path / "kernels.json").read_text())
    assert len(stored["machines"][autotune.machine_key()]["models"]) == 2


def test_a_new_machine_or_a_broken_file_measures_again(tmp_path, monkeypatch):
    plain = _model()
    (tmp_path / "kernels.json").write_text("{not json")
    plan = _tune(plain, tmp_path)
    assert json.loads((tmp_path / "kernels.json").read_text())["machines"]  # rewritten whole
    monkeypatch.setattr(autotune, "machine_key", lambda: "another CPU | flags 0 | torch 0 | 1 threads")
    assert _tune(plain, tmp_path).choices.keys() == plan.choices.keys()
    assert len(json.loads((tmp_path / "kernels.json").read_text())["machines"]) == 2


def test_a_cache_that_cannot_be_written_only_warns(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where the cache folder would be
    with pytest.warns(UserWarning, match="could not store the decode kernel choice"):
        plan = autotune.tune_decoding(_model(), 1, cache_file=blocker / "kernels.json")
    assert plan.choices


def test_the_whole_step_decides(tmp_path, monkeypatch):
    """Whatever the single products say, a decode step that is not faster than plain keeps the plain model."""
    plain = _model()
    monkeypatch.setattr(autotune, "_race_linears", lambda layers, rows, dtype: "split")
    monkeypatch.setattr(autotune, "_race_group", lambda *args: "split")
    real_race = autotune._race

    def plain_wins(runs, budget_s, max_rounds=10_000):
        times = real_race(runs, budget_s, max_rounds)
        return {name: (1.0 if name == "plain" else 2.0) for name in times} if "plain" in times else times

    monkeypatch.setattr(autotune, "_race", plain_wins)
    assert prepare_for_decoding(plain, 1, cache_file=tmp_path / "kernels.json") is plain
    assert _tune(plain, tmp_path).is_plain()  # and that is what was stored


def test_a_busy_machine_decodes_plain_and_stores_nothing(tmp_path, monkeypatch):
    plain = _model()
    real_race = autotune._race
    monkeypatch.setattr(autotune, "cpu_wait", lambda: (0.9, 100.0))  # busy before measuring: nothing is raced
    monkeypatch.setattr(autotune, "_race", lambda *args, **kwargs: pytest.fail("raced on a busy machine"))
    assert prepare_for_decoding(plain, 1, cache_file=tmp_path / "kernels.json") is plain
    monkeypatch.setattr(autotune, "_race", real_race)
    waited = iter([(0.0, 100.0), (0.0, 1e6)])  # quiet at the start, then others took the CPUs meanwhile
    monkeypatch.setattr(autotune, "cpu_wait", lambda: next(waited))
    assert _tune(plain, tmp_path).is_plain()
    assert not (tmp_path / "kernels.json").exists()


def test_cpu_pressure_is_read_where_linux_reports_it():
    wait = READ_CPU_WAIT()
    if Path("/proc/pressure/cpu").exists():
        share, seconds = wait
        assert 0.0 <= share <= 1.0 and seconds >= 0.0
    else:
        assert wait is None


def test_no_autotune_is_the_plain_model(tmp_path):
    plain = _model()
    assert prepare_for_decoding(plain, 1, autotune=False, cache_file=tmp_path / "kernels.json") is plain
    assert not (tmp_path / "kernels.json").exists()
    with pytest.raises(ValueError, match="batch_size"):
        prepare_for_decoding(plain, 0)


def test_models_off_the_cpu_are_not_measured(tmp_path):
    meta = build_model(CONFIGS["qwen3"]).to("meta")
    assert autotune.tune_decoding(meta, 1, cache_file=tmp_path / "kernels.json").is_plain()
    assert not (tmp_path / "kernels.json").exists()


def test_machine_key_names_cpu_flags_torch_and_threads():
    name, _ = autotune.cpu_description()
    key = autotune.machine_key()
    assert name and key.startswith(name) and torch.__version__ in key and f"{torch.get_num_threads()} threads" in key


def test_the_cli_flag_keeps_the_plain_model(tmp_path, monkeypatch):
    from llms_from_scratch.cli import zoo

    parser = argparse.ArgumentParser()
    zoo.add_model_arguments(parser)
    assert parser.parse_args(["--no-autotune"]).no_autotune and not parser.parse_args([]).no_autotune
    plain = _model()
    monkeypatch.setattr(zoo, "_load_model_and_tokenizer", lambda *args: (plain, "tokenizer"))
    monkeypatch.setenv("LLMS_CACHE_DIR", str(tmp_path))  # where the autotuner keeps its file
    load = zoo.load_model_and_tokenizer.__wrapped__  # without the cache of the last loaded model
    assert load("tiny", "cpu", torch.float32, False) == (plain, "tokenizer")
    assert not (tmp_path / autotune.CACHE_FILE_NAME).exists()
    load("tiny", "cpu", torch.float32, True)
    assert (tmp_path / autotune.CACHE_FILE_NAME).exists()


def _package_sources():
    root = Path(llms_from_scratch.__file__).parent
    return sorted(root.rglob("*.py"))


def test_the_package_swaps_no_classes_and_re_points_no_tensors():
    """``obj.__class__ = ...`` and ``tensor.data = ...`` change a live model behind its reader's back. Assignments
    to ``self.data`` (a dataset's list of examples) are ordinary attributes and allowed."""
    found = []
    for path in _package_sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "__class__":
                    found.append(f"{path.name}:{node.lineno} __class__ =")
                if isinstance(target, ast.Attribute) and target.attr == "data" and not (
                        isinstance(target.value, ast.Name) and target.value.id == "self"):
                    found.append(f"{path.name}:{node.lineno} .data =")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in ("__class__", "data")):
                found.append(f"{path.name}:{node.lineno} setattr {node.args[1].value}")
    assert not found, found


def test_the_private_onednn_op_stays_in_the_decode_layout():
    """Only the decode layout may name the private op (where the autotuner guards it); training code never."""
    users = [p.name for p in _package_sources() if "torch.ops.mkldnn" in p.read_text()]
    assert users == ["decode_layout.py"], users
    assert "decode_layout" not in (Path(decode_layout.__file__).parent / "head_loss.py").read_text()
