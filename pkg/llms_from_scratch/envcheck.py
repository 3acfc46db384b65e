"""An environment check: is every package the book needs installed, in a version that works?

Prints one line per requirement (OK or FAIL, installed and required versions), the Python version, the
torch build and the device that would be used. ``llms-from-scratch env`` and ``setup/check_env.py`` run it;
it returns the number of failures so scripts can exit non-zero.
"""

from __future__ import annotations

import importlib.metadata as metadata
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MIN_PYTHON = (3, 10)
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*((?:[<>=!~]=?\s*[\w.*+]+\s*,?\s*)*)\s*(?:;\s*(.*))?$")


@dataclass(frozen=True)
class CheckResult:
    name: str
    installed: str | None
    required: str
    ok: bool


def _version_key(version: str) -> tuple[int, ...]:
    """``"2.13.0+cpu"`` -> ``(2, 13, 0)``; stops at the first part that is not a plain number."""
    parts = []
    for piece in re.split(r"[.+-]", version):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.group() != piece:
            break
    return tuple(parts)


def _satisfies(installed: str, spec: str) -> bool:
    """Check ``installed`` against a comma-separated specifier such as ``">=2.2,<3"``."""
    have = _version_key(installed)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        op, want = re.match(r"([<>=!~]=?)\s*(.+)", clause).groups()
        need = _version_key(want)
        n = max(len(have), len(need))
        a, b = have + (0,) * (n - len(have)), need + (0,) * (n - len(need))
        ok = {">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b, "==": a == b, "!=": a != b,
              "~=": a >= b and a[: len(need) - 1] == b[: len(need) - 1]}[op]
        if not ok:
            return False
    return True


def requirements(groups: tuple[str, ...] = ("notebooks",)) -> list[tuple[str, str]]:
    """(name, specifier) pairs: the package's runtime needs plus the named optional groups."""
    try:
        declared = metadata.requires("llms-from-scratch") or []
    except metadata.PackageNotFoundError:
        declared = _requirements_from_pyproject()
    pairs = []
    for line in declared:
        match = _REQ.match(line)
        if match is None:
            continue
        name, spec, marker = match.groups()
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker or "")
        if extra is None or extra.group(1) in groups:
            pairs.append((name, spec.replace(" ", "")))
    return pairs


def _requirements_from_pyproject() -> list[str]:
    """Read the declared needs from ``pkg/pyproject.toml`` when the package is not installed yet."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: report the core package only
        return ["torch>=2.2"]
    if not pyproject.is_file():
        return ["torch>=2.2"]
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for group, needs in project.get("optional-dependencies", {}).items():
        lines += [f'{need}; extra == "{group}"' for need in needs]
    return lines


def run_checks(groups: tuple[str, ...] = ("notebooks",)) -> list[CheckResult]:
    py = platform.python_version()
    results = [CheckResult("python", py, ">=" + ".".join(map(str, MIN_PYTHON)), sys.version_info[:2] >= MIN_PYTHON)]
    try:
        own = metadata.version("llms-from-scratch")
        results.append(CheckResult("llms-from-scratch", own, "installed", True))
    except metadata.PackageNotFoundError:
        results.append(CheckResult("llms-from-scratch", None, "installed (pip install -e pkg)", False))
    for name, spec in requirements(groups):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            results.append(CheckResult(name, None, spec or "any", False))
            continue
        results.append(CheckResult(name, version, spec or "any", _satisfies(version, spec)))
    return results


def report(groups: tuple[str, ...] = ("notebooks",), out=print) -> int:
    """Print the check and return the number of failed requirements."""
    results = run_checks(groups)
    width = max(len(r.name) for r in results)
    for r in results:
        status = "OK  " if r.ok else "FAIL"
        out(f"[{status}] {r.name:<{width}}  installed {r.installed or 'missing':<14} required {r.required}")
    out(f"Python: {sys.version.split()[0]} ({platform.python_implementation()}, {platform.system()} {platform.machine()})")
    try:
        import torch
    except ImportError:
        out("torch: not importable, so no device check")
    else:
        cuda = torch.version.cuda or "none (CPU-only build)"
        out(f"torch build: {torch.__version__}, CUDA {cuda}, {torch.get_num_threads()} CPU threads")
        from .device import describe_device

        out(describe_device())
    failures = sum(not r.ok for r in results)
    out("All checks passed." if failures == 0 else f"{failures} check(s) failed: install what is marked FAIL.")
    return failures
