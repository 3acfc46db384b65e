"""What a reader sees in the stored notebooks, checked over every notebook in the repository.

- every markdown image link resolves to a file;
- every file in a ``figures/`` folder is one that folder's ``draw.py`` produces (the scripts are run here, into a
  temporary folder, so CI also proves that ``make figures`` works);
- no output shows an absolute path of the machine that ran it (``/work/...``, ``/home/...``, ``/tmp/...``);
- no progress bar is stored on stderr;
- the numbered section headings of each chapter's main notebooks, read in file order, run from the first section
  of the book's chapter to its last without skipping a number.
"""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SKIP_PARTS = {".venv", ".git", ".ipynb_checkpoints", ".cache", "node_modules", "__pycache__", "build", "dist"}


def _tracked(paths):
    return sorted(p for p in paths if not _SKIP_PARTS.intersection(p.relative_to(ROOT).parts))


NOTEBOOKS = _tracked(ROOT.rglob("*.ipynb"))
FIGURE_DIRS = _tracked(p for p in ROOT.rglob("figures") if p.is_dir())
MAIN_DIRS = ("ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "appendix-A", "appendix-D", "appendix-E")
MAIN_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent.name == "01_main-chapter-code" and p.parent.parent.name in MAIN_DIRS]
# the last numbered section of each chapter in the book's table of contents
LAST_SECTION = {"ch02": "2.8", "ch03": "3.6", "ch04": "4.7", "ch05": "5.5", "ch06": "6.8", "ch07": "7.9",
                "appendix-A": "A.9", "appendix-D": "D.4", "appendix-E": "E.4"}
IMAGE_SUFFIXES = {".svg", ".png", ".jpg", ".jpeg", ".gif", ".pdf", ".webp"}

# ![alt](target "title") and <img src="target">; links to the web and cell attachments are not files here
_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img[^>]*\ssrc=[\"']([^\"']+)[\"']")
# an absolute path of a machine: a root folder that no reader shares, at the start of a word or after a quote
_MACHINE_PATH = re.compile(
    r"(?:(?<=^)|(?<=[\s'\"(=:\[,]))(/(?:work|home|root|tmp|Users|mnt|var|opt|srv|scratch|data)/[^\s'\")\],]*)",
    re.MULTILINE,
)
# what tqdm writes: "37%|###7      | 3/8 [00:01<00:02,  2.10it/s]"
_PROGRESS_BAR = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+|\[\d+:\d+<[\d:?]+,|\d+(?:\.\d+)?(?:it/s|s/it)\]")
# "## 3.4 ...", "### 3.4.1 ...", "## A.2 ...": the chapter, then one or two numbers
_NUMBERED_HEADING = re.compile(r"^#{1,6}\s+([A-Z]|\d+)\.(\d+)(?:\.(\d+))?[\s:.]")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    return "".join(cell.get("source", ""))


def _output_texts(output: dict) -> list[str]:
    if "text" in output:
        text = output["text"]
        return ["".join(text) if isinstance(text, list) else text]
    data = output.get("data", {})
    texts = []
    for kind, value in data.items():
        if kind.startswith("text/"):
            texts.append("".join(value) if isinstance(value, list) else str(value))
    if output.get("output_type") == "error":
        texts.append("\n".join(output.get("traceback", [])))
    return texts


def image_links(markdown: str) -> list[str]:
    """The local image targets a markdown cell links to (web links and attachments left out)."""
    targets = [a or b for a, b in _IMAGE_LINK.findall(markdown)]
    return [t for t in targets if not re.match(r"^(?:[a-z]+:|//)", t)]


def machine_paths(text: str) -> list[str]:
    return _MACHINE_PATH.findall(text)


def has_progress_bar(text: str) -> bool:
    return bool(_PROGRESS_BAR.search(text)) or "\r" in text


def heading_skips(headings: list[str], last: str | None = None) -> list[str]:
    """Where numbered headings skip: 2.3 after 2.1, 3.4.2 without 3.4.1, 3.5.1 under 3.4, a change of chapter,
    a first section other than X.1, or (given ``last``, e.g. ``"3.6"``) an end before or past the last section."""
    problems = []
    chapter, section, sub = None, 0, None
    for heading in headings:
        match = _NUMBERED_HEADING.match(heading)
        if not match:
            continue
        ch, sec, subsec = match.group(1), int(match.group(2)), match.group(3)
        number = f"{ch}.{sec}" + (f".{subsec}" if subsec else "")
        if chapter is not None and ch != chapter:
            problems.append(f"{number} in a notebook of chapter {chapter}")
            continue
        if subsec is None:
            if sec != section + 1:
                problems.append(f"{number} follows {chapter}.{section}" if section else f"{number} is the first section")
            chapter, section, sub = ch, sec, 0
        else:
            if sec != section:
                problems.append(f"{number} is not inside section {ch}.{section}")
                chapter, section = ch, sec
            elif int(subsec) != sub + 1:
                problems.append(f"{number} follows {ch}.{sec}.{sub}" if sub else f"{number} without {ch}.{sec}.1")
            sub = int(subsec)
    if last is not None and f"{chapter}.{section}" != last:
        problems.append(f"the last section is {chapter}.{section}, the book's last is {last}")
    return problems


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_checks_find_notebooks_and_figures():
    assert len(NOTEBOOKS) > 20, "the notebook search pattern is broken"
    assert MAIN_NOTEBOOKS, "no main chapter notebooks found"
    assert FIGURE_DIRS, "no figures/ folders found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_rel)
def test_image_links_resolve(path):
    missing = []
    for index, cell in enumerate(_load(path)["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for target in image_links(_source(cell)):
            if not (path.parent / target.split("#")[0]).is_file():
                missing.append(f"cell {index}: {target}")
    assert not missing, f"{_rel(path)} links images that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_rel)
def test_outputs_show_no_machine_paths_and_no_stderr_progress_bars(path):
    problems = []
    for index, cell in enumerate(_load(path)["cells"]):
        for output in cell.get("outputs", []):
            for text in _output_texts(output):
                for found in machine_paths(text):
                    problems.append(f"cell {index} shows the path {found!r}")
            if output.get("name") == "stderr" and any(has_progress_bar(t) for t in _output_texts(output)):
                problems.append(f"cell {index} stores a progress bar on stderr")
    problems = list(dict.fromkeys(problems))  # one line per cell and finding
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("chapter", sorted(LAST_SECTION))
def test_main_notebook_section_numbers_do_not_skip(chapter):
    # a chapter may span notebooks (appendix A: code-part1, code-part2): read them in file order
    notebooks = [p for p in MAIN_NOTEBOOKS if p.parent.parent.name == chapter]
    assert notebooks, f"no main notebook for {chapter}"
    headings = [
        line
        for path in notebooks
        for cell in _load(path)["cells"]
        if cell["cell_type"] == "markdown"
        for line in _source(cell).splitlines()
        if line.startswith("#")
    ]
    problems = heading_skips(headings, LAST_SECTION[chapter])
    assert not problems, f"{chapter}/01_main-chapter-code skips section numbers:\n" + "\n".join(problems)


@pytest.mark.parametrize("folder", FIGURE_DIRS, ids=_rel)
def test_every_stored_figure_is_drawn_by_the_folders_script(folder, tmp_path):
    stored = {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    script = folder / "draw.py"
    assert script.is_file(), f"{_rel(folder)} holds figures but no draw.py that produces them"
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{_rel(script)} failed:\n{result.stderr[-2000:]}"
    drawn = {p.name for p in tmp_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    assert drawn, f"{_rel(script)} drew nothing"
    assert not stored - drawn, f"{_rel(folder)}: no script draws {sorted(stored - drawn)}; delete them or draw them"
    assert not drawn - stored, f"{_rel(folder)}: {sorted(drawn - stored)} are not stored; run `make figures`"


@pytest.mark.parametrize("folder", FIGURE_DIRS[:1], ids=_rel)
def test_figures_are_drawn_byte_for_byte_the_same_twice(folder, tmp_path):
    # stable SVG bytes keep `make figures` from changing files (and git diffs) when nothing was edited
    import matplotlib

    from llms_from_scratch.plotting import render

    figures = runpy.run_path(str(folder / "draw.py"))["FIGURES"]
    with matplotlib.rc_context():  # the style must not leak into other tests of this session
        first = render(figures, tmp_path / "a")
        second = render(figures, tmp_path / "b")
    changed = [a.name for a, b in zip(first, second) if a.read_bytes() != b.read_bytes()]
    assert not changed, f"{_rel(folder)}: drawing twice gave different bytes for {changed}"


def test_image_links_are_found_and_web_links_ignored():
    md = '![a](figures/x.svg) ![b](https://example.org/y.png) <img src="figures/z.png" width=300> ![c](<w.svg> "t")'
    assert image_links(md) == ["figures/x.svg", "figures/z.png", "w.svg"]


def test_machine_paths_are_found_but_repository_paths_are_not():
    assert machine_paths("saved to /work/main/ch05/model.pth") == ["/work/main/ch05/model.pth"]
    assert machine_paths("File '/home/alice/x.txt'") == ["/home/alice/x.txt"]
    assert machine_paths("cache: /tmp/abc123") == ["/tmp/abc123"]
    assert machine_paths("saved to ch05/model.pth; 3/4 done; 10 it/s") == []


def test_progress_bars_are_recognised():
    assert has_progress_bar(" 37%|###7      | 3/8 [00:01<00:02,  2.10it/s]")
    assert has_progress_bar("Epoch 1: 100%|██████████| 10/10 [00:03<00:00,  3.01it/s]\n")
    assert not has_progress_bar("UserWarning: something is deprecated\n")


def test_heading_skips_are_reported():
    assert heading_skips(["## 2.1 a", "## 2.2 b", "### 2.2.1 c", "### 2.2.2 d", "## 2.3 e"]) == []
    assert heading_skips(["## 2.1 a", "## 2.3 c"]) == ["2.3 follows 2.1"]
    assert heading_skips(["## 6.2 a", "## 6.3 b"]) == ["6.2 is the first section"]
    assert heading_skips(["## 7.1 a", "## 7.2 b"], last="7.3") == ["the last section is 7.2, the book's last is 7.3"]
    assert heading_skips(["## 3.1 a", "## 3.2 b", "### 3.2.2 c"]) == ["3.2.2 without 3.2.1"]
    assert heading_skips(["## A.1 a", "## A.2 b", "## A.9 c"]) == ["A.9 follows A.2"]
    assert heading_skips(["## 3.1 a", "### 3.2.1 b"]) == ["3.2.1 is not inside section 3.1"]
    assert heading_skips(["## A.1 a", "### A.1.1 b", "### A.1.2 c", "## A.2 d"], last="A.2") == []
    assert heading_skips(["# Chapter 4", "## Exercise 4.1", "## Summary"]) == []
