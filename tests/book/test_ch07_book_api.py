"""Chapter 7 as the book calls it: download_and_load_file, the two collate drafts and check_if_running.

query_model and generate_model_scores are tested against the project's running server in test_ollama_endpoint.py.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from local_http import Reply, serve

from llms_from_scratch import ch07
from llms_from_scratch.data import fetch, sha256_of

BOOK_URL = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json"
PAD = 50256


def test_signatures_follow_the_book():
    expected = {
        "download_and_load_file": (["file_path", "url"], {}),
        "custom_collate_draft_1": (["batch", "pad_token_id", "device"], {"pad_token_id": 50256, "device": "cpu"}),
        "custom_collate_draft_2": (["batch", "pad_token_id", "device"], {"pad_token_id": 50256, "device": "cpu"}),
        "check_if_running": (["process_name"], {}),
        "query_model": (["prompt", "model", "url"], {"model": "llama3", "url": "http://localhost:11434/api/chat"}),
        "generate_model_scores": (["json_data", "json_key", "model"], {"model": "llama3"}),
    }
    for name, (params, defaults) in expected.items():
        signature = inspect.signature(getattr(ch07, name))
        book = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        assert [p.name for p in book] == params, name
        assert {p.name: p.default for p in book if p.default is not inspect.Parameter.empty} == defaults, name


def test_download_and_load_file_uses_the_data_layer_then_the_saved_file(tmp_path):
    file_path = tmp_path / "instruction-data.json"
    data = ch07.download_and_load_file(file_path, BOOK_URL)
    assert len(data) == 1100 and set(data[0]) == {"instruction", "input", "output"}
    assert sha256_of(file_path) == sha256_of(fetch("instruction-data"))  # the checked bytes, unchanged
    assert [p.name for p in tmp_path.iterdir()] == ["instruction-data.json"]  # no temporary file left
    file_path.write_text(json.dumps([{"instruction": "mine", "input": "", "output": "kept"}]), encoding="utf-8")
    assert ch07.download_and_load_file(file_path, BOOK_URL) == [{"instruction": "mine", "input": "", "output": "kept"}]


def test_download_and_load_file_fetches_other_urls_as_they_are(tmp_path):
    entries = [{"instruction": "Say hi.", "input": "", "output": "Hi."}]
    requests = []
    with serve({"/my.json": Reply(body=json.dumps(entries).encode())}, requests) as base_url:
        assert ch07.download_and_load_file(tmp_path / "sub" / "my.json", f"{base_url}/my.json") == entries
        with pytest.raises(ConnectionError, match=r"could not download .*/missing\.json.*save the file at"):
            ch07.download_and_load_file(tmp_path / "missing.json", f"{base_url}/missing.json")
    assert [path for _, path, _ in requests] == ["/my.json", "/missing.json"]
    assert not (tmp_path / "missing.json").exists()


def test_collate_draft_1_pads_inputs_only():
    inputs = ch07.custom_collate_draft_1([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, PAD, PAD, PAD], [7, 8, 9, PAD, PAD]]
    assert inputs.dtype == torch.long and inputs.device.type == "cpu"
    assert ch07.custom_collate_draft_1([[3], [1, 2]], pad_token_id=0, device="meta").device.type == "meta"
    assert ch07.custom_collate_draft_1([[3], [1, 2]], pad_token_id=0).tolist() == [[3, 0], [1, 2]]


def test_collate_draft_2_shifts_targets_without_masking():
    inputs, targets = ch07.custom_collate_draft_2([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, PAD, PAD, PAD], [7, 8, 9, PAD, PAD]]
    assert targets.tolist() == [[1, 2, 3, 4, PAD], [6, PAD, PAD, PAD, PAD], [8, 9, PAD, PAD, PAD]]
    # the final version masks every padding target after the first one; the drafts' inputs are its inputs
    final_inputs, final_targets = ch07.custom_collate_fn([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
    assert torch.equal(final_inputs, inputs)
    assert torch.equal(torch.where(final_targets == -100, PAD, final_targets), targets)
    inputs, targets = ch07.custom_collate_draft_2([(1, 2)], pad_token_id=7, device="meta")
    assert inputs.device.type == targets.device.type == "meta"
    with pytest.raises(ValueError, match="empty batch"):
        ch07.custom_collate_draft_2([])


def _own_name() -> str:
    comm = Path(f"/proc/{os.getpid()}/comm")
    if comm.is_file():
        return comm.read_text().strip()
    psutil = pytest.importorskip("psutil", reason="no /proc and no psutil: cannot learn this process's name")
    return psutil.Process().name()


def test_check_if_running_finds_this_process():
    assert ch07.check_if_running(_own_name())
    assert not ch07.check_if_running("no-such-process-7f3e9a")


@pytest.mark.skipif(not Path("/proc/self/comm").is_file(), reason="needs Linux's /proc")
def test_check_if_running_without_psutil_reads_proc_then_ps(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # as if psutil were not installed
    assert ch07.check_if_running(_own_name())
    assert not ch07.check_if_running("no-such-process-7f3e9a")
    monkeypatch.setattr(ch07, "_PROC", Path("/no/proc/here"))  # as on macOS: fall back to `ps`
    assert ch07.check_if_running(_own_name()[:15])  # ps prints the name the kernel keeps (15 characters)
    assert not ch07.check_if_running("no-such-process-7f3e9a")
