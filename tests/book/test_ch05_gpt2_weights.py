"""Loading GPT-2 checkpoints in Hugging Face's layouts into the book's GPTModel, and saving/loading training state."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.ch05 import (
    CheckpointMismatchError,
    generate,
    gpt2_config,
    load_checkpoint,
    load_model_state_dict,
    load_weights_into_gpt,
    save_checkpoint,
)
from llms_from_scratch.data import get_asset

transformers = pytest.importorskip("transformers")

# a shrunk GPT-2: every tensor kind of the real one, small enough to build in milliseconds
SMALL = {"vocab_size": 257, "context_length": 32, "emb_dim": 48, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
         "qkv_bias": True}


def _hf_model(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=SMALL["vocab_size"], n_positions=SMALL["context_length"], n_embd=SMALL["emb_dim"],
        n_layer=SMALL["n_layers"], n_head=SMALL["n_heads"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    # the default init leaves biases and LayerNorms at 0 / 1; random values make a wrong mapping visible
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The same random GPT-2 written by save_pretrained ("transformer." prefix) and in the hub's bare layout."""
    hf = _hf_model()
    folder = tmp_path_factory.mktemp("hf")
    hf.save_pretrained(folder)
    pretrained = load_file(str(folder / "model.safetensors"))
    hub = {k.removeprefix("transformer."): v.contiguous() for k, v in pretrained.items() if k != "lm_head.weight"}
    hub["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))  # older hub files carry the causal mask buffer
    save_file(hub, str(folder / "hub.safetensors"))
    return hf, {"save_pretrained": pretrained, "hub": load_file(str(folder / "hub.safetensors"))}


@pytest.mark.parametrize("layout", ["save_pretrained", "hub"])
def test_logits_and_greedy_tokens_match_transformers(checkpoints, layout):
    hf, files = checkpoints
    assert any(k.startswith("transformer.") for k in files["save_pretrained"])
    assert not any(k.startswith("transformer.") for k in files["hub"])

    gpt = load_weights_into_gpt(GPTModel(SMALL).eval(), files[layout])
    idx = torch.randint(0, SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = gpt(idx)
        theirs = hf(idx).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)

    prompt = idx[:1, :5]
    our_tokens = generate(gpt, prompt, max_new_tokens=10, context_size=SMALL["context_length"])
    their_tokens = hf.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=0,
                               attention_mask=torch.ones_like(prompt))
    assert our_tokens.tolist() == their_tokens.tolist()


def test_missing_tensor_is_named(checkpoints):
    _, files = checkpoints
    params = dict(files["hub"])
    del params["h.1.mlp.c_fc.bias"]
    with pytest.raises(CheckpointMismatchError, match=r"trf_blocks\.1\.ff\.layers\.0\.bias"):
        load_weights_into_gpt(GPTModel(SMALL), params)


def test_extra_tensor_is_named(checkpoints):
    _, files = checkpoints
    params = dict(files["hub"], **{"h.0.attn.rotary.weight": torch.zeros(3)})
    with pytest.raises(CheckpointMismatchError, match=r"h\.0\.attn\.rotary\.weight"):
        load_weights_into_gpt(GPTModel(SMALL), params)


def test_wrong_shape_names_tensor_and_both_shapes(checkpoints):
    _, files = checkpoints
    params = dict(files["hub"], **{"h.1.mlp.c_proj.weight": torch.zeros(192, 40)})
    with pytest.raises(CheckpointMismatchError) as excinfo:
        load_weights_into_gpt(GPTModel(SMALL), params)
    message = str(excinfo.value)
    assert "h.1.mlp.c_proj.weight" in message and "trf_blocks.1.ff.layers.2.weight" in message
    assert "(40, 192)" in message and "(48, 192)" in message


def test_model_without_qkv_bias_is_rejected(checkpoints):
    _, files = checkpoints
    with pytest.raises(CheckpointMismatchError, match=r"h\.0\.attn\.c_attn\.bias"):
        load_weights_into_gpt(GPTModel({**SMALL, "qkv_bias": False}), files["hub"])


def test_failed_load_leaves_model_unchanged(checkpoints):
    _, files = checkpoints
    gpt = GPTModel(SMALL)
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    params = dict(files["hub"])
    del params["ln_f.bias"]
    with pytest.raises(CheckpointMismatchError):
        load_weights_into_gpt(gpt, params)
    assert all(torch.equal(before[k], v) for k, v in gpt.state_dict().items())


def test_gpt2_sizes_are_registered_with_checksums():
    for size, layers in [("124M", 12), ("355M", 24), ("774M", 36), ("1558M", 48)]:
        assert gpt2_config(size)["n_layers"] == layers
        asset = get_asset(f"gpt2-{size}-safetensors")
        assert asset.urls[0].startswith("https://huggingface.co/openai-community/gpt2")
        assert asset.urls[0].endswith("/resolve/main/model.safetensors")
    with pytest.raises(ValueError, match="choose one of"):
        gpt2_config("125M")


def test_compiled_model_state_dict_loads_into_plain_model(tmp_path):
    torch.manual_seed(0)
    model = GPTModel(SMALL)
    compiled = torch.compile(model)  # wrapping only; nothing is compiled until the first call
    state = compiled.state_dict()
    assert all(k.startswith("_orig_mod.") for k in state)
    torch.save(state, tmp_path / "compiled.pth")

    plain = GPTModel(SMALL)
    load_model_state_dict(plain, torch.load(tmp_path / "compiled.pth", weights_only=True))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), plain.state_dict().values()))


def test_save_and_load_model_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = GPTModel(SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx = torch.randint(0, SMALL["vocab_size"], (2, 8))
    model(idx).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "ckpt.pth", torch.compile(model), optimizer, step=1)

    model2 = GPTModel(SMALL)
    optimizer2 = torch.optim.AdamW(model2.parameters(), lr=1e-3, weight_decay=0.1)
    extra = load_checkpoint(tmp_path / "ckpt.pth", model2, optimizer2)
    assert extra["step"] == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    s1, s2 = optimizer.state_dict()["state"], optimizer2.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]  # the temporary file was renamed, not left behind
