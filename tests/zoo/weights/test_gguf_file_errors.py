"""A GGUF file that is missing, not GGUF, or cut short gives one error that names the file and what is wrong
(issue 15, item 17 for GGUF), instead of numpy's "cannot reshape array" or "changing to a larger dtype"."""

from __future__ import annotations

import pytest
from gguf_files import truncated_copy, write_small_gguf

from llms_from_scratch.files.gguf import GGUFFileError, open_gguf
from llms_from_scratch.models import load_gguf


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory):
    return write_small_gguf(tmp_path_factory.mktemp("gguf") / "small.gguf")


def test_a_valid_file_opens(small_gguf):
    reader = open_gguf(small_gguf)
    assert [t.name for t in reader.tensors] == ["token_embd.weight"]


@pytest.mark.parametrize("n_bytes, where", [(10, "header"), (100, "metadata"), (8000, "tensor data")])
def test_a_file_cut_short_names_itself_and_says_truncated(small_gguf, tmp_path, n_bytes, where):
    cut = truncated_copy(small_gguf, tmp_path / f"cut-in-{where.replace(' ', '-')}.gguf", n_bytes)
    with pytest.raises(GGUFFileError, match="truncated") as info:
        open_gguf(cut)
    assert str(cut.resolve()) in str(info.value) and "download the file again" in str(info.value)


@pytest.mark.parametrize("content, what", [(b"", "it is empty"), (b"PK\x03\x04 a zip file", "it starts with b'PK")])
def test_a_file_that_is_not_gguf_says_so(tmp_path, content, what):
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFFileError, match=f"{path.resolve()} is not a GGUF file \\({what}"):
        open_gguf(path)


def test_a_missing_file_names_itself_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.gguf does not exist: check the path"):
        open_gguf(tmp_path / "no-such.gguf")


def test_missing_metadata_names_the_field_and_the_file(small_gguf):
    """The small file has no llama.attention.head_count: before, ``int(None)`` raised a bare TypeError."""
    with pytest.raises(GGUFFileError, match=f"{small_gguf}: the GGUF metadata lacks llama.attention.head_count"):
        load_gguf(small_gguf)
