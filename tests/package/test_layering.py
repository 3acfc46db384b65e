"""The package's layering, read from the source with ``ast`` (nothing is imported):

* ``nn`` (the shared blocks) imports no model, tokenizer, training, serving or CLI code (the data layer's cache
  folder is the one thing it may ask for);
* ``models``, ``tokenizers``, ``data`` and ``files`` import nothing from ``training``, ``serving`` or ``cli``;
* no library module imports ``cli``, and ``training`` and ``serving`` do not import each other;
* no two modules import each other, directly or through others (imports inside functions count too);
* no module imports another module's private name (``from x import _name``).

And ``llms-from-scratch --help`` runs without importing torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import llms_from_scratch

PACKAGE_DIR = Path(llms_from_scratch.__file__).parent
PACKAGE = "llms_from_scratch"

# (layer, layers it must not import); a layer is a sub-package (or module) right below the package
FORBIDDEN = {
    "nn": {"models", "tokenizers", "training", "serving", "cli"},  # blocks know no model names
    "files": {"*"},
    "data": {"nn", "models", "tokenizers", "training", "serving", "cli"},
    "tokenizers": {"nn", "models", "training", "serving", "cli"},
    "models": {"training", "serving", "cli"},
    "training": {"serving", "cli"},
    "serving": {"training", "cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def is_package(name: str) -> bool:
    return (PACKAGE_DIR.joinpath(*name.split(".")[1:]) / "__init__.py").is_file()


def exists(name: str) -> bool:
    rel = name.split(".")[1:]
    return is_package(name) or PACKAGE_DIR.joinpath(*rel).with_suffix(".py").is_file()


def resolve(importer: str, level: int, target: str | None) -> str:
    """The absolute name behind a (possibly relative) ``from ... import``."""
    if level == 0:
        return target or ""
    base = importer.split(".")
    if not is_package(importer):
        base = base[:-1]  # a module's relative imports start at its package
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the file that targets the package."""
    importer = module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            source = resolve(importer, node.level, node.module)
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if exists(sub):  # "from . import x" imports the module x
                    found.append((sub, None, node.lineno))
                else:
                    found.append((source, alias.name, node.lineno))
    return found


MODULES = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
EDGES = {name: imports_of(path) for name, path in MODULES.items()}


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_import_reader_sees_the_package():
    # a guard for the tests below: they mean nothing if the reader finds no imports
    assert len(MODULES) > 50
    assert ("llms_from_scratch.models.config", "ModelConfig") in {(t, n) for t, n, _ in
                                                                 EDGES["llms_from_scratch.models.decoder"]}


@pytest.mark.parametrize("source_layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(source_layer):
    forbidden = FORBIDDEN[source_layer]
    bad = []
    for name, edges in EDGES.items():
        if layer(name) != source_layer:
            continue
        for target, _, line in edges:
            target_layer = layer(target)
            if target_layer == source_layer or target == PACKAGE:
                continue
            if "*" in forbidden or target_layer in forbidden:
                bad.append(f"{MODULES[name].relative_to(PACKAGE_DIR)}:{line} imports {target}")
    assert not bad, f"{source_layer} must not import {sorted(forbidden)}:\n" + "\n".join(bad)


def test_library_code_never_imports_the_cli():
    bad = [f"{MODULES[name].relative_to(PACKAGE_DIR)}:{line} imports {target}"
           for name, edges in EDGES.items() if layer(name) != "cli"
           for target, _, line in edges if layer(target) == "cli"]
    assert not bad, "\n".join(bad)


def test_no_cross_module_private_imports():
    bad = [f"{MODULES[name].relative_to(PACKAGE_DIR)}:{line} imports {imported} from {target}"
           for name, edges in EDGES.items()
           for target, imported, line in edges
           if imported is not None and imported.startswith("_") and not imported.startswith("__")]
    assert not bad, "\n".join(bad)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph`` (as a list of modules), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    # a package's __init__ re-exporting its modules is not a cycle with them: the edges from a module to its own
    # parent package are left out (``from . import x`` inside the package still counts, as an edge to x)
    graph = {name: {t for t, _, _ in edges if t in MODULES and not name.startswith(t + ".")}
             for name, edges in EDGES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_help_does_not_import_torch():
    # what `llms-from-scratch --help` imports: the console script calls cli.main, which builds every parser
    code = ("import sys\n"
            "from llms_from_scratch.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "for command in ('generate', 'pretrain', 'serve', 'chat', 'data', 'download', 'convert', 'evaluate'):\n"
            "    try:\n        main([command, '--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
