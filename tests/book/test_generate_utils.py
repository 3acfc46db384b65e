"""generate.trim_input_tensor, kv_cache.generate's streaming, utils.download_file and import_definitions_from_notebook."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
import pytest
import torch
from local_http import Reply, free_port, serve
from notebook_defs import load_notebook_definitions

from llms_from_scratch import utils
from llms_from_scratch.data import Asset, AssetUnavailableError
from llms_from_scratch.generate import trim_input_tensor
from llms_from_scratch.kv_cache import generate as kv_generate
from llms_from_scratch.kv_cache.utils import KVCache
from llms_from_scratch.utils import download_file, import_definitions_from_notebook

# ------------------------------------------------------------------------------------------ trim_input_tensor


@pytest.mark.parametrize(
    ("num_tokens", "context_len", "max_new_tokens", "kept"),
    [
        (10, 8, 3, 5),  # too long: keep the last context_len - max_new_tokens tokens
        (4, 8, 3, 4),  # fits: unchanged
        (5, 8, 3, 5),  # fits exactly
        (10, 8, 7, 1),  # at least one token always stays
    ],
)
def test_trim_input_tensor_keeps_the_most_recent_tokens(num_tokens, context_len, max_new_tokens, kept):
    ids = torch.arange(2 * num_tokens).view(2, num_tokens)
    out = trim_input_tensor(ids, context_len, max_new_tokens)
    assert torch.equal(out, ids[:, num_tokens - kept:])


@pytest.mark.parametrize("max_new_tokens", [8, 9])
def test_trim_input_tensor_refuses_more_new_tokens_than_the_context(max_new_tokens):
    with pytest.raises(ValueError, match=r"max_new_tokens \(\d+\) must be smaller than the context length \(8\)"):
        trim_input_tensor(torch.zeros(1, 3, dtype=torch.long), 8, max_new_tokens)


def test_kv_cache_generate_re_exports_trim_input_tensor():
    assert kv_generate.trim_input_tensor is trim_input_tensor


# ---------------------------------------------------------------------------- kv_cache.generate's streaming


class CountingModel(torch.nn.Module):
    """A tiny model on the ``cache=`` protocol: the next token is (sum of all tokens so far) mod vocab_size.

    Its answer depends on the whole sequence, so it is only right when the cache carries the earlier tokens.
    """

    def __init__(self, vocab_size: int = 11, n_layers: int = 2):
        super().__init__()
        self.cfg = {"vocab_size": vocab_size, "n_layers": n_layers, "context_length": 64}
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.calls: list[int] = []

    def reset_kv_cache(self) -> None:
        pass

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        self.calls.append(idx.shape[1])
        previous = cache.get(0) if cache is not None else None
        totals = idx.cumsum(dim=1) + (previous if previous is not None else 0)  # (batch, num_tokens)
        if cache is not None:
            for layer in range(self.cfg["n_layers"]):
                cache.update(layer, totals[:, -1:])
        return torch.nn.functional.one_hot(totals % self.cfg["vocab_size"], self.cfg["vocab_size"]).float()


def test_stream_yields_the_tokens_of_generate_text_simple():
    model = CountingModel()
    prompt = torch.tensor([[1, 2, 3], [4, 0, 2]])
    expected = kv_generate.generate_text_simple(model, prompt, 6, use_cache=False)
    assert torch.equal(kv_generate.generate_text_simple(model, prompt, 6), expected)
    model.calls.clear()
    streamed = list(kv_generate.generate_text_simple_stream(model, prompt, 6))
    assert all(t.shape == (2, 1) for t in streamed)
    assert torch.equal(torch.cat([prompt, *streamed], dim=1), expected)
    assert model.calls == [3, 1, 1, 1, 1, 1]  # one prefill, then one token per step, none after the last


def test_stream_stops_at_eos_only_when_every_row_has_it():
    model = CountingModel()
    # row sums 6 and 5: the next tokens are 6, 1, ... and 5, 10, ...; token 1 appears in row 0 at step 2
    prompt = torch.tensor([[1, 2, 3], [5, 0, 0]])
    assert len(list(kv_generate.generate_text_simple_stream(model, prompt, 4, eos_token_id=1))) == 4
    single = torch.tensor([[1, 2, 3]])
    tokens = [t.item() for t in kv_generate.generate_text_simple_stream(model, single, 4, eos_token_id=1)]
    assert tokens == [6]  # 6, then 12 % 11 = 1 is EOS


# ------------------------------------------------------------------------------------------- download_file

BODY = b"the verdict, in bytes\n" * 100


@pytest.fixture
def no_mirror(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMS_DATA_MIRROR", raising=False)
    monkeypatch.setenv("LLMS_CACHE_DIR", str(tmp_path / "cache"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_file_saves_under_the_url_file_name(no_mirror, tmp_path):
    requests: list = []
    with serve({"/files/data.txt?download=1": Reply(body=BODY)}, requests) as base:
        path = download_file(f"{base}/files/data.txt?download=1", tmp_path / "out", quiet=True)  # query ignored
        assert path == tmp_path / "out" / "data.txt"
        assert path.read_bytes() == BODY
        again = download_file(f"{base}/files/data.txt", tmp_path / "out", quiet=True)  # kept, not fetched again
    assert again == path
    assert len(requests) == 1


def test_download_file_defaults_to_the_current_folder(no_mirror, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with serve({"/data.txt": Reply(body=BODY)}) as base:
        assert download_file(f"{base}/data.txt", quiet=True) == Path("data.txt")
    assert (tmp_path / "data.txt").read_bytes() == BODY


def test_download_file_leaves_nothing_behind_when_the_connection_breaks(no_mirror, tmp_path):
    with serve({"/data.txt": Reply(body=BODY, drop_after=100)}) as base:
        with pytest.raises(AssetUnavailableError, match="connection closed after 100 of 2,200 bytes") as info:
            download_file(f"{base}/data.txt", tmp_path, quiet=True)
    assert "LLMS_DATA_MIRROR" in str(info.value) and str(tmp_path / "data.txt") in str(info.value)
    assert _leftovers(tmp_path) == []  # no partial file, no .part file


@pytest.mark.parametrize(
    ("reply", "message"),
    [(Reply(status=404, body=b"gone"), "HTTP 404"), (Reply(body=BODY, delay=2.0), "timed out after 0.5 s")],
)
def test_download_file_errors_say_what_went_wrong(no_mirror, tmp_path, reply, message):
    with serve({"/data.txt": reply}) as base:
        with pytest.raises(AssetUnavailableError, match=message):
            download_file(f"{base}/data.txt", tmp_path, timeout=0.5, quiet=True)
    assert _leftovers(tmp_path) == []


def test_download_file_reports_a_server_that_is_not_there(no_mirror, tmp_path):
    with pytest.raises(AssetUnavailableError, match="could not connect"):
        download_file(f"http://127.0.0.1:{free_port()}/data.txt", tmp_path, quiet=True)


def test_download_file_needs_a_file_name_in_the_url(tmp_path):
    with pytest.raises(ValueError, match="cannot tell a file name"):
        download_file("http://127.0.0.1/folder/", tmp_path)


def test_download_file_serves_a_file_of_the_same_name_from_the_mirror(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "data.txt").write_bytes(b"from the mirror")
    monkeypatch.setenv("LLMS_DATA_MIRROR", str(mirror))
    requests: list = []
    with serve({"/data.txt": Reply(body=BODY)}, requests) as base:
        path = download_file(f"{base}/data.txt", tmp_path / "out")
    assert path.read_bytes() == b"from the mirror"
    assert requests == []
    assert _leftovers(tmp_path / "out") == ["data.txt"]


def test_download_file_fetches_a_registered_asset_through_the_data_layer(no_mirror, tmp_path, monkeypatch):
    with serve({"/asset.bin": Reply(body=BODY), "/bad.bin": Reply(body=b"corrupt")}) as base:
        good = Asset(name="t-good", filename="sub/asset.bin", urls=(f"{base}/asset.bin",),
                     sha256=hashlib.sha256(BODY).hexdigest(), size=len(BODY), license="test", description="test")
        bad = Asset(name="t-bad", filename="bad.bin", urls=(f"{base}/bad.bin",),
                    sha256=hashlib.sha256(BODY).hexdigest(), size=None, license="test", description="test")
        monkeypatch.setattr(utils, "list_assets", lambda: [good, bad])

        path = download_file(f"{base}/asset.bin", tmp_path / "out", quiet=True)
        assert path.read_bytes() == BODY
        assert (tmp_path / "cache" / "sub" / "asset.bin").read_bytes() == BODY  # went through the data layer's cache

        with pytest.raises(AssetUnavailableError, match="wrong checksum"):
            download_file(f"{base}/bad.bin", tmp_path / "out", quiet=True)
    assert _leftovers(tmp_path / "out") == ["asset.bin"]


# ------------------------------------------------------------------------------ import_definitions_from_notebook

CELLS = [
    "import math\nfrom collections import OrderedDict",
    "%matplotlib inline\n!echo hello\nSCALE = 3\nscale_for_plots = 99",
    "def triple(x):\n    return SCALE * x",
    "class Box:\n    def __init__(self, v):\n        self.v = v",
    "open(OUT_FILE, 'w').write('side effect')\nraise RuntimeError('an experiment must not run')",
    "import functools\n\n\n@functools.lru_cache\ndef root(x):\n    return math.sqrt(x)",
    "def triple(x):  # a later cell redefines it, as readers do\n    return 30 * x",
    "CONFIG: dict = {'n': 2}\nA, B = 1, 2\nprint('experiment output')",
]


@pytest.fixture
def notebook(tmp_path) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")]
                                  + [nbformat.v4.new_code_cell(c) for c in CELLS])
    path = tmp_path / "my notebook-1.ipynb"
    nbformat.write(nb, path)
    return path


def test_definitions_are_imported_and_experiments_skipped(notebook, tmp_path, capsys):
    out_file = tmp_path / "side-effect.txt"
    mod = import_definitions_from_notebook(notebook, extra_globals={"OUT_FILE": str(out_file)})
    assert mod.__name__ == "my_notebook_1"
    assert mod.SCALE == 3 and mod.CONFIG == {"n": 2}
    assert mod.Box(5).v == 5
    assert mod.root(16) == 4.0 and hasattr(mod.root, "cache_info")  # decorators kept
    assert mod.math is __import__("math") and mod.OrderedDict is not None
    for skipped in ("scale_for_plots", "A", "B"):
        assert not hasattr(mod, skipped)
    assert not out_file.exists()
    assert "experiment output" not in capsys.readouterr().out


def test_a_later_definition_replaces_an_earlier_one(notebook):
    assert import_definitions_from_notebook(notebook).triple(2) == 60


def test_folder_and_name_or_a_path_give_the_same_module(notebook):
    by_path = import_definitions_from_notebook(notebook)
    by_folder = import_definitions_from_notebook(notebook.parent, notebook.name)
    assert by_folder.__file__ == by_path.__file__ == str(notebook)
    assert by_folder.SCALE == by_path.SCALE


def test_a_missing_notebook_or_a_broken_cell_is_a_clear_error(notebook, tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebook at"):
        import_definitions_from_notebook(tmp_path, "absent.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("def broken(:\n    pass"))
    nbformat.write(nb, notebook)
    with pytest.raises(SyntaxError, match="code cell 9 does not parse"):
        import_definitions_from_notebook(notebook)


def test_the_test_helper_is_a_wrapper_over_the_package_function(notebook):
    mod = load_notebook_definitions(notebook, name="custom")
    assert mod.__name__ == "custom" and mod.SCALE == 3
    assert load_notebook_definitions(notebook).__name__ == "my_notebook_1"
