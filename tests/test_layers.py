"""The layout of ``bench/`` as a contract (ARCHITECTURE, "Layout: folders are stages, imports point down").

The layer order lives in ``pyproject.toml`` (``[tool.importlinter]``, no listed exceptions) and ``lint-imports``
(import-linter) checks it on the package as it is; a second test proves that the contract catches an upward import,
on a copy of the package with one added. That imports sit at the top of their module (an import inside a function
hides a dependency from the contract) is checked with the other shape rules, in ``tests/test_code_shape.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "bench"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


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

