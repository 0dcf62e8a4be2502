"""The layout of ``bench/`` as a contract (ARCHITECTURE, "Layout: folders are stages, imports point down").

The layer order lives in ``pyproject.toml`` (``[tool.importlinter]``, no listed exceptions) and ``lint-imports``
(import-linter) checks it on the package as it is; a second test proves that the contract catches an upward import,
on a copy of the package with one added. Imports sit at the top of their module (an import inside a function hides
a dependency from the contract), apart from optional heavy dependencies, each with a comment saying why; and every
module stays small enough to read whole.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "bench"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# imported where they are used, never at the top: optional or heavy dependencies (the comment on the line says why)
LAZY = ("ray", "lm_eval", "peft", "selenium", "bitsandbytes")
# torch loads only after bench/__init__ has pinned the kernel environment (bench.runtime.numerics)
# datasets, lm-eval's own dependency, is quieted only where lm-eval runs: reading configs and records loads neither
LAZY_IN = {"bench/runtime/numerics.py": ("torch",), "bench/metrics/lm_eval_utility.py": ("datasets",)}
MAX_LINES = 400


def _lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the repository's contracts, on the ``bench`` package found first in ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)


def test_the_contracts_list_no_exceptions() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = config["contracts"]
    layers = [c for c in contracts if c["type"] == "layers"]
    assert len(layers) == 1 and layers[0]["containers"] == ["bench"] and layers[0]["exhaustive"] is True
    assert all(not c.get("ignore_imports") and not c.get("exhaustive_ignores") for c in contracts)


def test_imports_point_down() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout, result.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    budget = tmp_path / "bench" / "specs" / "run.py"
    budget.write_text(budget.read_text() + "\nfrom bench.board.table import build_table  # noqa: E402, F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and "bench.specs.run -> bench.board.table" in result.stdout, result.stdout


def _nested_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside a function or class body (module-level ``if`` / ``try`` blocks count as the top)."""
    out: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and nested:
                out.append(child)
            walk(child, nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    walk(tree, False)
    return out


def test_imports_are_at_the_top_of_their_module() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        source = path.read_text()
        lines = source.splitlines()
        for node in _nested_imports(ast.parse(source)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            allowed = (*LAZY, *LAZY_IN.get(name, ()))
            if not all(m.split(".")[0] in allowed for m in modules):
                problems.append(f"{name}:{node.lineno}: import of {', '.join(modules)} inside a function")
            elif "#" not in lines[node.lineno - 1]:
                problems.append(f"{name}:{node.lineno}: a deferred import without a comment saying why")
    assert not problems, "\n".join(problems)


def test_no_module_is_over_400_lines() -> None:
    long = {path.relative_to(REPO).as_posix(): n for path in sorted(PACKAGE.rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long
