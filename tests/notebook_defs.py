"""Import the definitions of a notebook as a module, so tests can compare them with the package.

Only top-level imports, functions, classes and UPPER_CASE constants are executed: the notebook's
experiments (training runs, downloads, prints) are skipped, so importing is fast and has no side effects.
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

import nbformat


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return all(isinstance(t, ast.Name) and t.id.isupper() for t in targets)
    return False


def load_notebook_definitions(path: str | Path, name: str | None = None) -> types.ModuleType:
    """Return a module holding the notebook's definitions; later cells override earlier ones, as in Jupyter."""
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    module = types.ModuleType(name or path.stem.replace("-", "_"))
    module.__file__ = str(path)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        # drop IPython magics and shell escapes, which are not Python
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise SyntaxError(f"{path}: a code cell does not parse: {exc}") from exc
        kept = [node for node in tree.body if _keep(node)]
        if kept:
            code = compile(ast.Module(body=kept, type_ignores=[]), str(path), "exec")
            exec(code, module.__dict__)
    return module
