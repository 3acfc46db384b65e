"""The opt-in compiled decode step (``nn/compiled_decoding.py``): it gives the greedy tokens of the uncompiled
int8 model, leaves the model itself unchanged, and the race keeps the plain model where compiling does not pay.

Compiling takes tens of seconds even for a tiny model, so the tests that compile are marked slow; the others use
TorchDynamo's ``"eager"`` backend (it traces the step, guards and recompiles as inductor does, but generates no
code), which checks the wrapper's logic in seconds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.nn.compiled_decoding import CompiledDecoding, compile_for_decoding
from llms_from_scratch.quant import choose_kernels, quantize_model
from llms_from_scratch.serving.generation import generate

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_int8(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = get_config("smollm2-135m", n_layers=2, emb_dim=64, n_heads=4, n_kv_groups=2, head_dim=16, hidden_dim=128,
                     vocab_size=256, context_length=64)
    return quantize_model(build_model(cfg).eval(), "int8", kernel="plain")


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # compiled code of another test's model must not be reused (nor counted) here
    yield
    torch._dynamo.reset()


def prompts() -> torch.Tensor:
    return torch.randint(0, 256, (1, 7), generator=torch.Generator().manual_seed(1))


def test_only_cached_one_token_steps_without_autograd_take_the_compiled_forward():
    model = tiny_int8()
    wrapped = CompiledDecoding(model, backend="eager")
    calls = []
    wrapped.compiled_forward = lambda *args: calls.append(args) or model(*args)
    ids = prompts()
    wrapped(ids)  # no cache: the model itself
    cache = wrapped.new_cache(1, 12)
    with torch.no_grad():
        wrapped(ids, None, cache, True)  # the prompt's prefill: the model itself
        assert not calls
        wrapped(ids[:, :1], None, cache, True)
    assert len(calls) == 1 and calls[0][2] is cache
    assert wrapped.cfg is model.cfg and list(wrapped.parameters()) == list(model.parameters())


def test_traced_step_gives_the_same_greedy_tokens_and_recompiles_a_bounded_number_of_times():
    model = tiny_int8()
    expected = generate(model, prompts(), 8)
    wrapped = CompiledDecoding(model, backend="eager")
    assert torch.equal(generate(wrapped, prompts(), 8), expected)
    # a second request of another length and cache size must not compile once per position
    longer = torch.randint(0, 256, (1, 11), generator=torch.Generator().manual_seed(2))
    assert torch.equal(generate(wrapped, longer, 12), generate(model, longer, 12))
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert 0 < graphs <= 16, f"{graphs} graphs compiled for 20 decode steps: positions are not symbolic"
    # by now positions and cache sizes are symbols: a longer request with a larger cache compiles nothing new
    assert torch.equal(generate(wrapped, longer, 16), generate(model, longer, 16))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


def test_a_decode_step_traces_into_one_graph_without_breaks():
    model = tiny_int8()
    cache = model.new_cache(1, 12)
    with torch.no_grad():
        model(prompts(), None, cache, True)  # prefill
        explained = torch._dynamo.explain(model.forward)(prompts()[:, :1], None, cache, True)
    assert explained.graph_break_count == 0, explained.break_reasons


def test_generate_after_the_warm_up_compiles_nothing_new():
    """The warm-up and race trace the step that ``generate`` runs (no mask for a new token), so a reply does
    not stop in its first steps to compile again."""
    model = tiny_int8()
    compile_for_decoding(model, rounds=1, steps=2, backend="eager", max_length=40)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    wrapped = CompiledDecoding(model, backend="eager")  # TorchDynamo's cache belongs to the model's forward
    longer = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(3))
    assert torch.equal(generate(wrapped, longer, 20), generate(model, longer, 20))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


@pytest.mark.slow
def test_inductor_step_gives_the_greedy_tokens_of_the_uncompiled_int8_model():
    model = tiny_int8()
    choose_kernels(model, rows=1, budget_s=0.01)  # whatever kernels the race picks here, compiled must agree
    expected = generate(model, prompts(), 16)
    fast, report = compile_for_decoding(model, rounds=1, steps=2)
    assert report.compile_s > 0 and report.chosen in ("compiled", "plain")
    assert (fast is model) == (report.chosen == "plain")
    compiled = CompiledDecoding(model)
    assert torch.equal(generate(compiled, prompts(), 16), expected)
    assert torch.equal(generate(model, prompts(), 16), expected)  # the model itself is unchanged


def test_the_race_keeps_the_plain_model_where_the_compiled_step_is_not_faster(monkeypatch):
    import llms_from_scratch.nn.compiled_decoding as cd

    model = tiny_int8()
    real_steps = cd._steps
    # the compiled candidate made artificially slow: the plain model must win
    monkeypatch.setattr(cd, "_steps", lambda m, *a, **k: [t + (1.0 if isinstance(m, CompiledDecoding) else 0.0)
                                                        for t in real_steps(m, *a, **k)])
    fast, report = compile_for_decoding(model, rounds=2, steps=2, backend="eager")
    assert fast is model and report.chosen == "plain"
    assert report.compiled_step_s > report.plain_step_s


@pytest.fixture
def tiny_gguf(tmp_path):
    pytest.importorskip("gguf")
    from tiny_gguf import write_tiny_gguf

    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path)
    return path


def cli_generate(path, capsys, *option: str) -> tuple[str, str]:
    from llms_from_scratch.cli import main

    assert main(["generate", "-m", str(path), "-p", "the cat", "--max-new-tokens", "6", "--device", "cpu",
                 "--dtype", "float32", "--quantize", "int8", "--no-autotune", *option]) == 0
    out = capsys.readouterr()
    return out.out, out.err


def test_generate_chat_and_serve_take_the_compile_option(tiny_gguf, monkeypatch, capsys):
    import llms_from_scratch.cli._inference_args as inference_args
    import llms_from_scratch.nn.compiled_decoding as cd
    from llms_from_scratch.cli import build_parser

    for command in ("generate", "chat", "serve"):
        argv = [command, "-m", "x", "--compile"] + (["-p", "hi"] if command == "generate" else [])
        assert build_parser().parse_args(argv).compile
    real = cd.compile_for_decoding
    # TorchDynamo without code generation: the same wrapper, traced and raced, in seconds
    lengths = []

    def quick_compile(model, max_length=None):
        lengths.append(max_length)
        return real(model, rounds=1, steps=2, backend="eager", max_length=max_length)

    monkeypatch.setattr(cd, "compile_for_decoding", quick_compile)
    inference_args._load_quantized.cache_clear()
    plain_text, _ = cli_generate(tiny_gguf, capsys)
    text, err = cli_generate(tiny_gguf, capsys, "--compile")
    inference_args._load_quantized.cache_clear()
    assert text == plain_text
    assert "compiling the decode step" in err and "compiled in " in err and " step" in err.splitlines()[-1]
    assert len(lengths) == 1 and lengths[0] >= 6 + 2  # the race's cache holds the prompt and the 6 new tokens


def test_the_race_runs_in_a_cache_of_the_length_asked_for(monkeypatch):
    """The compiled step's time depends on the cache's size, so the race allocates what requests will."""
    model = tiny_int8()
    sizes = []
    real_new_cache = model.new_cache
    monkeypatch.setattr(model, "new_cache", lambda rows, length: sizes.append(length) or real_new_cache(rows, length))
    compile_for_decoding(model, rounds=1, steps=2, backend="eager", max_length=200)
    assert sizes and max(sizes) == 200
    sizes.clear()
    compile_for_decoding(model, rounds=1, steps=2, backend="eager")  # default: the context, at most 4096
    assert max(sizes) == min(model.cfg.context_length, 4096)


@pytest.mark.slow
def test_generate_with_compile_end_to_end_on_a_tiny_gguf(tiny_gguf, capsys):
    import llms_from_scratch.cli._inference_args as inference_args

    inference_args._load_quantized.cache_clear()
    plain_text, _ = cli_generate(tiny_gguf, capsys)
    text, err = cli_generate(tiny_gguf, capsys, "--compile")
    inference_args._load_quantized.cache_clear()
    assert text == plain_text and "compiled in " in err
