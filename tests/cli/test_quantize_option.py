"""``--quantize`` for generate, chat and serve, and the memory line of ``generate --benchmark``: on a tiny GGUF file
written here (``support/tiny_gguf.py``) and a tiny float checkpoint; end to end on SmolLM2-135M-Instruct (slow)."""

from __future__ import annotations

import argparse
import io

import pytest
import torch
from tiny_gguf import write_tiny_gguf

import llms_from_scratch.cli._inference_args as inference_args
from llms_from_scratch.cli import build_parser, main
from llms_from_scratch.cli.errors import UsageError
from llms_from_scratch.cli.generate import add_generate_arguments
from llms_from_scratch.models import build_model, get_config, load_gguf, save_hf_checkpoint
from llms_from_scratch.quant import QuantizedLinear, quantize_model
from llms_from_scratch.serving.generation import generate
from llms_from_scratch.tokenizers import gguf_tokenizer

pytest.importorskip("gguf")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.gguf"
    write_tiny_gguf(path)
    return path


def quantized_layers(model) -> set[str]:
    return {m.scheme for m in model.modules() if isinstance(m, QuantizedLinear)}


def generate_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    return parser.parse_args(["-p", "the cat", "--device", "cpu", *argv])


@pytest.mark.parametrize("option, schemes", [
    ([], {"q4_0", "q4_1", "q8_0", "int8"}),  # the file's own blocks; the head in int8
    (["--quantize", "int8"], {"int8"}),
    (["--quantize", "int4"], {"int4", "int8"}),
    (["--quantize", "none"], set()),
])
def test_a_gguf_file_keeps_its_blocks_unless_told_otherwise(tiny_gguf, option, schemes):
    args = generate_args("-m", str(tiny_gguf), "--no-autotune", *option)
    model, tokenizer = inference_args.load_for_inference(args, torch.device("cpu"), torch.float32)
    assert quantized_layers(model) == schemes
    assert tokenizer.eos_ids == gguf_tokenizer(tiny_gguf).eos_ids


def test_generate_with_the_files_blocks_prints_what_the_dequantized_model_generates(tiny_gguf, capsys):
    # --dtype float32 keeps every product in float32, and without autotune the plain path computes exactly what
    # the float model computes from the dequantized weights
    assert main(["generate", "-m", str(tiny_gguf), "-p", "the cat", "--max-new-tokens", "6", "--device", "cpu",
                 "--dtype", "float32", "--no-autotune", "--benchmark"]) == 0
    out = capsys.readouterr()
    tokenizer = gguf_tokenizer(tiny_gguf)
    ids = torch.tensor([tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": "the cat"}]))])
    new = generate(load_gguf(tiny_gguf), ids, 6, eos_ids=tokenizer.eos_ids)[0, ids.shape[1]:].tolist()
    assert out.out == tokenizer.decode([t for t in new if t not in tokenizer.eos_ids], skip_special=True) + "\n"
    assert "tokens/s" in out.err and "memory: weights " in out.err and "MiB at its peak" in out.err


def test_quantize_int8_on_a_float_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model(get_config("gpt2-124m", emb_dim=64, n_layers=2, n_heads=4, context_length=64)).eval()
    save_hf_checkpoint(model, tmp_path)
    args = generate_args("-m", str(tmp_path), "--quantize", "int8", "--dtype", "float32", "--no-autotune")
    loaded, _ = inference_args.load_for_inference(args, torch.device("cpu"), torch.float32)
    assert quantized_layers(loaded) == {"int8"} and isinstance(loaded.out_head, QuantizedLinear)
    expected = quantize_model(model, "int8", kernel="plain")
    expected.out_head = QuantizedLinear.from_linear(expected.out_head, "int8")
    ids = torch.randint(0, 50257, (1, 8), generator=torch.Generator().manual_seed(0))
    assert torch.equal(generate(loaded, ids, 6), generate(expected, ids, 6))


def test_chat_and_serve_take_the_option(tiny_gguf, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/exit\n"))
    assert main(["chat", "-m", str(tiny_gguf), "--quantize", "int4", "--device", "cpu", "--max-new-tokens", "3"]) == 0
    capsys.readouterr()
    serve = build_parser().parse_args(["serve", "-m", str(tiny_gguf), "--quantize", "int8", "--dtype", "bfloat16"])
    assert (serve.quantize, serve.dtype) == ("int8", "bfloat16")


def test_a_wrong_value_is_a_usage_error_before_anything_loads(monkeypatch, capsys):
    monkeypatch.setattr(inference_args, "load_for_inference", lambda *a: pytest.fail("loaded a model"))
    for command in ("generate", "chat", "serve"):
        argv = [command, "--quantize", "int3"] + (["-p", "hi"] if command == "generate" else [])
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --quantize: invalid choice: 'int3'" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_generate_on_smollm2_quantized_end_to_end(capsys):
    for option in ([], ["--quantize", "int8"]):
        assert main(["generate", "-p", "What is the capital of France?", "--device", "cpu", "--max-new-tokens",
                     "12", "--benchmark", *option]) == 0
        out = capsys.readouterr()
        assert "Paris" in out.out
        weights = float(out.err.split("memory: weights ")[1].split(" MiB")[0])
        assert weights < 200  # float32 weights take 513 MiB


def test_int8_dynamic_loads_int8_weights_and_allows_8_bit_activations(tiny_gguf, monkeypatch):
    import llms_from_scratch.models.gguf_quantized as gguf_quantized

    inference_args._load_quantized.cache_clear()
    seen = []
    real = gguf_quantized.load_gguf_quantized
    monkeypatch.setattr(gguf_quantized, "load_gguf_quantized",
                        lambda *a, **kw: seen.append((a[1], kw["activations"])) or real(*a, **kw))
    args = generate_args("-m", str(tiny_gguf), "--quantize", "int8-dynamic")
    model, _ = inference_args.load_for_inference(args, torch.device("cpu"), torch.float32)
    inference_args._load_quantized.cache_clear()
    assert seen == [("int8", (torch.bfloat16, torch.int8))] and quantized_layers(model) == {"int8"}
    for dtype_option, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        args = generate_args("-m", str(tiny_gguf), "--quantize", "int8-dynamic", "--dtype", dtype_option)
        if dtype == torch.bfloat16:
            with pytest.raises(UsageError, match="--quantize int8-dynamic quantizes float32"):
                inference_args.load_for_inference(args, torch.device("cpu"), dtype)
        else:
            inference_args.load_for_inference(args, torch.device("cpu"), dtype)
            assert seen[-1] == ("int8", (torch.int8,))  # --dtype float32: no bfloat16 products
    inference_args._load_quantized.cache_clear()


@pytest.fixture
def book_checkpoint(tmp_path):
    from llms_from_scratch.ch04 import GPTModel
    from llms_from_scratch.training.checkpoints import save_checkpoint

    torch.manual_seed(0)
    cfg = {"vocab_size": 50257, "context_length": 16, "emb_dim": 64, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
           "qkv_bias": False}
    model = GPTModel(cfg).eval()
    save_checkpoint(tmp_path / "book.pth", model, config=cfg)
    return tmp_path / "book.pth", model


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_quantize_applies_to_the_books_checkpoint(book_checkpoint, monkeypatch, capsys, scheme):
    import llms_from_scratch.ch05 as ch05

    path, model = book_checkpoint
    used = []
    real = ch05.generate
    monkeypatch.setattr(ch05, "generate", lambda m, *a, **kw: used.append(m) or real(m, *a, **kw))
    assert main(["generate", "-p", "Hi", "--max-new-tokens", "2", "--device", "cpu", "--checkpoint", str(path),
                 "--quantize", scheme]) == 0
    capsys.readouterr()
    (loaded,) = used
    assert quantized_layers(loaded) == ({"int8"} if scheme == "int8" else {"int4", "int8"})
    assert isinstance(loaded.out_head, QuantizedLinear) and loaded.out_head.scheme == "int8"
    expected = inference_args.quantize_book_model(model, scheme)
    ids = torch.randint(0, 50257, (1, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(ids), expected(ids))


@pytest.mark.parametrize(("option", "message"), [
    (["--quantize", "int8-dynamic"], "--quantize int8-dynamic needs one-token decode steps"),
    (["--compile"], "--compile compiles one-token decode steps"),
])
def test_decode_step_options_are_refused_for_the_books_checkpoint_before_it_loads(book_checkpoint, monkeypatch,
                                                                                  capsys, option, message):
    import llms_from_scratch.cli.generate as generate_command

    monkeypatch.setattr(generate_command, "load_from_checkpoint", lambda *a: pytest.fail("loaded a model"))
    with pytest.raises(SystemExit) as info:
        main(["generate", "-p", "Hi", "--device", "cpu", "--checkpoint", str(book_checkpoint[0]), *option])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
