"""Chapter 5's GPT-2 loading as the book calls it: download_and_load_gpt2, load_weights_into_gpt, assign,
download_file and load_gpt2_params_from_tf_ckpt, on a tiny random GPT-2 that the tests write themselves.

The checkpoint is served the way the real one is: a ``model.safetensors`` in the hub's layout, reached through
the data layer (``$LLMS_DATA_MIRROR``, the cache, or a URL on a local HTTP server). The TensorFlow checkpoint is
written here from the format's description (LevelDB table + BundleEntryProto records + raw data file), so the
reader is tested against bytes it did not produce.
"""

from __future__ import annotations

import hashlib
import http.server
import inspect
import json
import struct
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from local_http import Reply, serve
from safetensors.torch import load_file, save_file

from llms_from_scratch import ch05, gpt2_weights
from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.data import Asset, AssetUnavailableError, get_asset
from llms_from_scratch.tf_checkpoint import TFCheckpointError, crc32c, mask_crc, read_tf_checkpoint

transformers = pytest.importorskip("transformers")

# GPT-2's heads are 64 wide at every size; the settings are derived from the file with that rule
HF_DIMS = dict(vocab_size=300, n_positions=64, n_embd=128, n_layer=2, n_head=2)
SETTINGS = {"n_vocab": 300, "n_ctx": 64, "n_embd": 128, "n_head": 2, "n_layer": 2}
CFG = gpt2_weights.gpt2_config("124M", vocab_size=300, context_length=64, emb_dim=128, n_layers=2, n_heads=2)
ASSET_NAME = "gpt2-124M-safetensors"


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random GPT-2 from transformers, written in the hub's layout into a mirror folder (weights + config)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(**HF_DIMS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # the default init leaves biases at 0 and norms at 1: random values expose a wrong mapping
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    # the hub's files use bare names, no lm_head (tied), and carry the causal-mask buffer of every block
    hub = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items()
           if k != "lm_head.weight" and not k.endswith(".attn.bias")}
    for i in range(HF_DIMS["n_layer"]):
        hub[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    mirror = tmp_path_factory.mktemp("mirror")
    folder = mirror / "gpt2" / "124M"
    folder.mkdir(parents=True)
    save_file(hub, str(folder / "model.safetensors"))
    config.to_json_file(folder / "config.json")
    payload = (folder / "model.safetensors").read_bytes()
    return SimpleNamespace(hf=hf, mirror=mirror, payload=payload, hub=load_file(str(folder / "model.safetensors")))


@pytest.fixture
def served(tiny, tmp_path, monkeypatch):
    """The 124M asset pointed at the tiny file: same name and cache path, its checksum, a local URL."""
    requests: list = []
    with serve({"/gpt2/model.safetensors": Reply(body=tiny.payload)}, requests) as base:
        asset = Asset(name=ASSET_NAME, filename="gpt2/124M/model.safetensors", urls=(f"{base}/gpt2/model.safetensors",),
                      sha256=hashlib.sha256(tiny.payload).hexdigest(), size=len(tiny.payload), license="test",
                      description="a tiny random GPT-2 written by the test")
        real = gpt2_weights.gpt2_asset
        monkeypatch.setattr(gpt2_weights, "gpt2_asset", lambda size: asset if size == "124M" else real(size))
        monkeypatch.setenv("LLMS_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("LLMS_DATA_MIRROR", str(tiny.mirror))
        yield SimpleNamespace(requests=requests, cache=tmp_path / "cache", models_dir=tmp_path / "gpt2")


def _logits(model, idx):
    with torch.no_grad():
        return model(idx).logits if hasattr(model, "config") else model(idx)


IDX = torch.randint(0, HF_DIMS["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------------------------ signatures


def test_names_and_parameters_follow_the_book():
    expected = {
        "download_and_load_gpt2": ["model_size", "models_dir"],
        "load_weights_into_gpt": ["gpt", "params"],
        "assign": ["left", "right"],
        "download_file": ["url", "destination", "backup_url"],
        "load_gpt2_params_from_tf_ckpt": ["ckpt_path", "settings"],
    }
    for name, params in expected.items():
        assert name in ch05.__all__
        assert list(inspect.signature(getattr(ch05, name)).parameters) == params, name
    assert inspect.signature(ch05.download_file).parameters["backup_url"].default is None


# ------------------------------------------------------------------------------------------------ download_and_load_gpt2


def test_settings_and_params_have_the_books_layout(served):
    settings, params = ch05.download_and_load_gpt2(model_size="124M", models_dir=served.models_dir)
    assert settings == SETTINGS
    assert json.loads((served.models_dir / "124M" / "hparams.json").read_text()) == settings
    assert set(params) == {"blocks", "wte", "wpe", "g", "b"}
    assert len(params["blocks"]) == 2
    block = params["blocks"][1]
    assert set(block) == {"ln_1", "attn", "ln_2", "mlp"}
    assert set(block["attn"]) == {"c_attn", "c_proj"} and set(block["mlp"]) == {"c_fc", "c_proj"}
    assert set(block["ln_1"]) == {"g", "b"} and set(block["attn"]["c_attn"]) == {"w", "b"}
    shapes = {"wte": (300, 128), "wpe": (64, 128), "g": (128,), "b": (128,)}
    assert {k: params[k].shape for k in shapes} == shapes
    assert block["attn"]["c_attn"]["w"].shape == (128, 384)  # (in, out), as OpenAI's Conv1D stores it
    assert block["mlp"]["c_proj"]["w"].shape == (512, 128)
    assert all(isinstance(params[k], np.ndarray) and params[k].dtype == np.float32 for k in shapes)


def test_params_load_into_gptmodel_with_transformers_logits(served, tiny):
    _, params = ch05.download_and_load_gpt2("124M", served.models_dir)
    gpt = GPTModel(CFG).eval()
    assert ch05.load_weights_into_gpt(gpt, params) is gpt
    torch.testing.assert_close(_logits(gpt, IDX), _logits(tiny.hf, IDX), rtol=0, atol=1e-5)
    # the head is GPT-2's tied embedding, copied: the model's parameters stay separate objects
    assert torch.equal(gpt.out_head.weight, gpt.tok_emb.weight)
    assert gpt.out_head.weight.data_ptr() != gpt.tok_emb.weight.data_ptr()


def test_flat_state_dicts_still_load(served, tiny):
    for flat in (tiny.hub, gpt2_weights.load_gpt2_params("124M")):
        gpt = ch05.load_weights_into_gpt(GPTModel(CFG).eval(), flat)
        torch.testing.assert_close(_logits(gpt, IDX), _logits(tiny.hf, IDX), rtol=0, atol=1e-5)


def test_nested_and_flat_forms_convert_both_ways(tiny):
    params = gpt2_weights.state_dict_to_book_params(tiny.hub)
    flat = gpt2_weights.book_params_to_state_dict(params)
    kept = {k for k in tiny.hub if not k.endswith(".attn.bias")}
    assert set(flat) == kept and all(torch.equal(flat[k], tiny.hub[k]) for k in kept)
    with pytest.raises(ch05.CheckpointMismatchError, match="'rotary.weight' is not a GPT-2 tensor name"):
        gpt2_weights.state_dict_to_book_params({**tiny.hub, "rotary.weight": torch.zeros(2)})
    # an unknown module inside a block keeps its place in the nested dict, and the loader names it
    extra = gpt2_weights.state_dict_to_book_params({**tiny.hub, "h.0.rotary.weight": torch.zeros(2)})
    assert extra["blocks"][0]["rotary"]["w"].shape == (2,)
    with pytest.raises(ch05.CheckpointMismatchError, match=r"h\.0\.rotary\.weight"):
        ch05.load_weights_into_gpt(GPTModel(CFG), extra)
    with pytest.raises(ch05.CheckpointMismatchError, match="lm_head.weight differs"):
        gpt2_weights.state_dict_to_book_params({**tiny.hub, "lm_head.weight": torch.zeros(300, 128)})


def test_wrong_sizes_give_named_errors(served):
    with pytest.raises(ValueError, match=r"Model size not in \('124M', '355M', '774M', '1558M'\)"):
        ch05.download_and_load_gpt2("125M", served.models_dir)
    _, params = ch05.download_and_load_gpt2("124M", served.models_dir)
    with pytest.raises(ch05.CheckpointMismatchError, match=r"trf_blocks\.2\.att\.W_query\.weight"):
        ch05.load_weights_into_gpt(GPTModel({**CFG, "n_layers": 3}), params)  # a layer the file lacks
    with pytest.raises(ch05.CheckpointMismatchError, match=r"h\.1\.ln_1\.weight"):
        ch05.load_weights_into_gpt(GPTModel({**CFG, "n_layers": 1}), params)  # a layer the model lacks
    with pytest.raises(ch05.CheckpointMismatchError) as info:
        ch05.load_weights_into_gpt(GPTModel({**CFG, "emb_dim": 64}), params)
    assert "h.0.ln_1.bias -> trf_blocks.0.norm1.shift: checkpoint shape (128,), model expects (64,)" in str(info.value)
    assert "gpt2_config(size)" in str(info.value)
    with pytest.raises(ch05.CheckpointMismatchError, match=r"h\.0\.attn\.c_attn\.bias"):
        ch05.load_weights_into_gpt(GPTModel({**CFG, "qkv_bias": False}), params)


def test_failed_load_leaves_the_model_unchanged(served):
    _, params = ch05.download_and_load_gpt2("124M", served.models_dir)
    del params["blocks"][1]["mlp"]["c_fc"]["b"]
    gpt = GPTModel(CFG)
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    with pytest.raises(ch05.CheckpointMismatchError, match=r"trf_blocks\.1\.ff\.layers\.0\.bias"):
        ch05.load_weights_into_gpt(gpt, params)
    assert all(torch.equal(before[k], v) for k, v in gpt.state_dict().items())


def test_the_mirror_is_used_before_the_network_then_the_cache(served, monkeypatch):
    ch05.download_and_load_gpt2("124M", served.models_dir)
    assert served.requests == [] and not served.cache.exists()  # read in place from the mirror
    monkeypatch.delenv("LLMS_DATA_MIRROR")
    ch05.download_and_load_gpt2("124M", served.models_dir)
    assert [(m, p) for m, p, _ in served.requests] == [("GET", "/gpt2/model.safetensors")]
    assert (served.cache / "gpt2" / "124M" / "model.safetensors").is_file()
    ch05.download_and_load_gpt2("124M", served.models_dir)
    assert len(served.requests) == 1  # the cached copy, checked against the checksum


def test_gpt2_sizes_come_from_one_table():
    from llms_from_scratch import flops
    from llms_from_scratch.gpt2_sizes import GPT2_HEAD_DIM, GPT2_MODEL_CONFIGS, GPT2_MODEL_SIZES
    from llms_from_scratch.models import get_config

    assert GPT2_MODEL_SIZES == ("124M", "355M", "774M", "1558M") == tuple(gpt2_weights.GPT2_MODEL_CONFIGS)
    for size, dims in GPT2_MODEL_CONFIGS.items():
        assert dims["emb_dim"] == GPT2_HEAD_DIM * dims["n_heads"]
        zoo = get_config(f"gpt2-{size.lower()}")
        assert (zoo.emb_dim, zoo.n_layers, zoo.n_heads) == (dims["emb_dim"], dims["n_layers"], dims["n_heads"])
        book_name = gpt2_weights.GPT2_BOOK_NAMES[size]
        assert flops.GPT2_SIZES[book_name] == dims
        assert gpt2_weights.gpt2_config(book_name) == gpt2_weights.gpt2_config(size)
    assert gpt2_weights.CONV1D_WEIGHTS == ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                                          "mlp.c_proj.weight")
    with pytest.raises(ValueError, match="choose one of 124M, 355M"):
        gpt2_weights.gpt2_config("gpt2-tiny")


# ------------------------------------------------------------------------------------------------ assign


def test_assign_checks_shapes_and_returns_a_parameter():
    left = torch.nn.Parameter(torch.zeros(2, 3, dtype=torch.bfloat16))
    right = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = ch05.assign(left, right)
    assert isinstance(out, torch.nn.Parameter) and out.dtype == torch.bfloat16
    assert out.tolist() == right.tolist()
    right[0, 0] = 100.0
    assert out[0, 0].item() == 0.0  # a copy, not a view of the array
    assert torch.equal(ch05.assign(torch.zeros(3), torch.ones(3)), torch.ones(3))
    with pytest.raises(ValueError, match=r"Shape mismatch\. Left: \(2, 3\), Right: \(3, 2\)"):
        ch05.assign(left, right.T)


# ------------------------------------------------------------------------------------------------ download_file


BODY = b"GPT-2 checkpoint bytes, or something like them.\n" * 50


def test_download_file_fetches_then_keeps_an_up_to_date_file(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LLMS_DATA_MIRROR", raising=False)
    requests: list = []
    with serve({"/models/124M/model.ckpt.index": Reply(body=BODY)}, requests) as base:
        dest = tmp_path / "gpt2" / "124M" / "model.ckpt.index"
        assert ch05.download_file(f"{base}/models/124M/model.ckpt.index", dest) == dest
        assert dest.read_bytes() == BODY
        assert sorted(p.name for p in dest.parent.iterdir()) == ["model.ckpt.index"]  # no temporary files left
        # this server answers HEAD with 501, so the source's size stays unknown and the complete file is kept
        ch05.download_file(f"{base}/models/124M/model.ckpt.index", dest)
    assert "File already exists and is up-to-date" in capsys.readouterr().out
    assert [m for m, _, _ in requests] == ["GET"]


def test_download_file_replaces_a_file_whose_size_differs(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMS_DATA_MIRROR", raising=False)
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _head(self):
            seen.append(self.command)
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()

        def do_HEAD(self):  # noqa: N802 (the name http.server dispatches to)
            self._head()

        def do_GET(self):  # noqa: N802
            self._head()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dest = tmp_path / "encoder.json"
        dest.write_bytes(b"an older, shorter file")
        ch05.download_file(f"http://127.0.0.1:{server.server_address[1]}/encoder.json", dest)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["HEAD", "GET"] and dest.read_bytes() == BODY


def test_download_file_serves_the_mirror_without_the_network(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "vocab.bpe").write_bytes(BODY)
    monkeypatch.setenv("LLMS_DATA_MIRROR", str(mirror))
    requests: list = []
    with serve({}, requests) as base:
        dest = tmp_path / "out" / "vocab.bpe"
        ch05.download_file(f"{base}/gpt-2/models/124M/vocab.bpe", dest)
        assert dest.read_bytes() == BODY
        dest.write_bytes(b"stale")  # a size that differs from the mirror's copy: replaced, still offline
        ch05.download_file(f"{base}/gpt-2/models/124M/vocab.bpe", dest)
        assert dest.read_bytes() == BODY
    assert requests == []


@pytest.mark.skipif("not __import__('os').environ.get('LLMS_DATA_MIRROR')", reason="needs the offline mirror")
def test_download_file_fetches_a_registered_url_as_its_checked_asset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMS_CACHE_DIR", str(tmp_path / "cache"))
    asset = get_asset("the-verdict")
    dest = tmp_path / "the-verdict.txt"
    ch05.download_file(asset.urls[0], dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == asset.sha256
    ch05.download_file(asset.urls[0], dest)  # the asset's recorded size answers without any request
    assert "File already exists and is up-to-date" in capsys.readouterr().out


def test_download_file_tries_the_backup_and_names_every_source(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMS_DATA_MIRROR", raising=False)
    with serve({"/backup/hparams.json": Reply(body=BODY)}) as base:
        dest = tmp_path / "hparams.json"
        ch05.download_file(f"{base}/main/hparams.json", dest, backup_url=f"{base}/backup/hparams.json")
        assert dest.read_bytes() == BODY
        dest.unlink()
        with pytest.raises(AssetUnavailableError) as info:
            ch05.download_file(f"{base}/main/hparams.json", dest, backup_url=f"{base}/gone/hparams.json")
    message = str(info.value)
    assert f"{base}/main/hparams.json: HTTP 404" in message and f"{base}/gone/hparams.json: HTTP 404" in message
    assert f"place it at {dest}" in message and "LLMS_DATA_MIRROR" in message
    assert not dest.exists() and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ TensorFlow checkpoints
# A writer of TensorFlow's tensor-bundle format, from its description: the index is a LevelDB table (data blocks of
# prefix-compressed entries with restart points, each followed by a type byte and a masked CRC32C; an index block of
# block handles; a footer with both handles and the magic number); values are BundleEntryProto messages.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value) if value else b""  # proto3 leaves zero values out


def _pb_bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _pb_fixed32(field: int, value: int) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<I", value)


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _table_block(entries: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))  # a full key: readers may start decoding here
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    for offset in restarts or [0]:
        out += struct.pack("<I", offset)
    return bytes(out + struct.pack("<I", len(restarts or [0])))


def _append_block(f, contents: bytes) -> bytes:
    offset = f.tell()
    f.write(contents + b"\x00" + struct.pack("<I", _mask(_crc32c_bitwise(contents + b"\x00"))))
    return _varint(offset) + _varint(len(contents))


def write_tf_checkpoint(prefix: Path, tensors: dict[str, np.ndarray], per_block: int = 5, restart_interval: int = 3):
    data, entries = bytearray(), []
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = b"".join(_pb_bytes(2, _pb_varint(1, d)) for d in tensors[name].shape)
        entry = (_pb_varint(1, 1) + _pb_bytes(2, shape) + _pb_varint(4, len(data)) + _pb_varint(5, len(raw))
                 + _pb_fixed32(6, _mask(crc32c(raw))))
        entries.append((name.encode(), entry))
        data += raw
    header = _pb_varint(1, 1) + _pb_bytes(3, _pb_varint(1, 1))  # num_shards=1, version {producer: 1}
    entries.insert(0, (b"", header))  # the empty key sorts first
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))
    with open(f"{prefix}.index", "wb") as f:
        index = []
        for start in range(0, len(entries), per_block):
            chunk = entries[start:start + per_block]
            index.append((chunk[-1][0], _append_block(f, _table_block(chunk, restart_interval))))
        meta_handle = _append_block(f, _table_block([], 1))
        index_handle = _append_block(f, _table_block(index, 1))
        f.write((meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57))


def _openai_variables(params: dict) -> dict[str, np.ndarray]:
    """The book's params as OpenAI's TensorFlow variables: model/h0/attn/c_attn/w, Conv1D weights as (1, in, out)."""
    out = {"model/wte": params["wte"], "model/wpe": params["wpe"], "model/ln_f/g": params["g"],
           "model/ln_f/b": params["b"]}
    for i, block in enumerate(params["blocks"]):
        for module, leaves in block.items():
            for sub, value in leaves.items():
                if isinstance(value, dict):
                    for leaf, array in value.items():
                        out[f"model/h{i}/{module}/{sub}/{leaf}"] = array[None] if leaf == "w" else array
                else:
                    out[f"model/h{i}/{module}/{sub}"] = value
    return out


@pytest.fixture(scope="module")
def tf_ckpt(tiny, tmp_path_factory):
    params = gpt2_weights.state_dict_to_book_params(tiny.hub)
    folder = tmp_path_factory.mktemp("tf") / "124M"
    folder.mkdir()
    variables = _openai_variables(params)
    variables["global_step"] = np.array(1000.0, dtype=np.float32)  # a scalar outside the model's scope
    write_tf_checkpoint(folder / "model.ckpt", variables)
    return SimpleNamespace(folder=folder, prefix=folder / "model.ckpt", params=params, variables=variables)


def test_crc32c_matches_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283 == _crc32c_bitwise(b"123456789")
    assert mask_crc(0) == 0xA282EAD8


def test_tf_checkpoint_round_trip(tf_ckpt, tiny):
    tensors = read_tf_checkpoint(tf_ckpt.prefix)
    assert set(tensors) == set(tf_ckpt.variables)
    assert all(np.array_equal(tensors[k], v) and tensors[k].dtype == np.float32 for k, v in tf_ckpt.variables.items())
    assert tensors["model/h1/attn/c_attn/w"].shape == (1, 128, 384)
    for path in (tf_ckpt.prefix, f"{tf_ckpt.prefix}.index", tf_ckpt.folder):
        params = ch05.load_gpt2_params_from_tf_ckpt(path, SETTINGS)
        flat, expected = (gpt2_weights.book_params_to_state_dict(p) for p in (params, tf_ckpt.params))
        assert set(flat) == set(expected) and all(torch.equal(flat[k], expected[k]) for k in flat)
    gpt = ch05.load_weights_into_gpt(GPTModel(CFG).eval(), params)
    torch.testing.assert_close(_logits(gpt, IDX), _logits(tiny.hf, IDX), rtol=0, atol=1e-5)


def test_tf_reader_rejects_damaged_and_foreign_files(tf_ckpt, tmp_path):
    index = Path(f"{tf_ckpt.prefix}.index").read_bytes()
    data = Path(f"{tf_ckpt.prefix}.data-00000-of-00001").read_bytes()

    def copy(index_bytes: bytes, data_bytes: bytes = data, name: str = "model.ckpt") -> Path:
        prefix = tmp_path / name
        Path(f"{prefix}.index").write_bytes(index_bytes)
        Path(f"{prefix}.data-00000-of-00001").write_bytes(data_bytes)
        return prefix

    flipped = bytearray(index)
    flipped[10] ^= 0x01  # inside the first data block
    with pytest.raises(TFCheckpointError, match="fails its checksum"):
        read_tf_checkpoint(copy(bytes(flipped)))
    with pytest.raises(TFCheckpointError, match="no table magic number"):
        read_tf_checkpoint(copy(index[:-1] + b"\x00"))
    with pytest.raises(TFCheckpointError, match="shorter than"):
        read_tf_checkpoint(copy(index, data[:-4]))
    with pytest.raises(FileNotFoundError, match="no checkpoint index"):
        read_tf_checkpoint(tmp_path / "elsewhere" / "model.ckpt")
    with pytest.raises(ch05.CheckpointMismatchError, match="settings\\['n_layer'\\] is 1"):
        ch05.load_gpt2_params_from_tf_ckpt(tf_ckpt.prefix, {**SETTINGS, "n_layer": 1})


def test_tf_reader_names_unsupported_dtypes(tmp_path):
    prefix = tmp_path / "strings.ckpt"
    write_tf_checkpoint(prefix, {"model/name": np.zeros(2, dtype=np.float32)})
    index = Path(f"{prefix}.index").read_bytes()
    # rewrite the entry's dtype from DT_FLOAT (1) to DT_STRING (7): same length, so only the checksums change
    entries = [(b"", _pb_varint(1, 1) + _pb_bytes(3, _pb_varint(1, 1))),
               (b"model/name", _pb_varint(1, 7) + _pb_bytes(2, _pb_bytes(2, _pb_varint(1, 2))) + _pb_varint(5, 8))]
    with open(f"{prefix}.index", "wb") as f:
        data_handle = _append_block(f, _table_block(entries, 16))
        meta_handle = _append_block(f, _table_block([], 1))
        index_handle = _append_block(f, _table_block([(b"model/name", data_handle)], 1))
        f.write((meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57))
    assert Path(f"{prefix}.index").read_bytes() != index
    with pytest.raises(TFCheckpointError, match="model/name has TensorFlow dtype 7"):
        read_tf_checkpoint(prefix)
