"""The pytest plug-in: a leaderboard YAML collects one item per entry; -k selects; a stored cell is reused; --lf
reruns failures. The stores start as copies of the committed fixture records (tests/fixtures/mini_records/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets  # noqa: F401 -- imported before any in-process run (see _run)
import pytest

from bench.grid.cells import plan
from bench.grid.select import select_cells
from bench.specs.board import LeaderboardSpec

from .conftest import PLUGINS, copy_mini_records, fixture_board, mini_board

REPO = Path(__file__).resolve().parent.parent


def _run(pytester: pytest.Pytester, results: Path, *args: str) -> pytest.RunResult:
    """pytest in this process (no second torch import): it forgets the modules that a run imported afterwards, and
    ``datasets`` registers its pyarrow types once per process, so it is imported at the top of this module."""
    return pytester.runpytest_inprocess("-p", "no:randomly", f"--ubench-results={results}", *args)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_collects_entries_and_writes_the_board(pytester: pytest.Pytester, tmp_path: Path) -> None:
    board = fixture_board(pytester.path, methods="[{method: ga, label: GA}, {method: gd}, {method: npo}]")
    results = copy_mini_records(tmp_path / "results")  # GA and npo are stored, gd is not
    stored = _tree(results)
    collected = _run(pytester, results, str(board), "--collect-only", "-q")
    names = [line for line in collected.outlines if "mini.yaml::" in line]
    assert len(names) == 3 and any("/npo/seed0" in n for n in names)
    assert _tree(results) == stored and not (pytester.path / "leaderboards" / "mini").exists()  # nothing ran
    selected = _run(pytester, results, str(board), "-k", "npo")
    selected.assert_outcomes(passed=1, deselected=2)
    assert "leaderboard mini v1" in selected.stdout.str()
    # gd has no record: the tables go under the store, not next to the board
    assert "1 of 3 cells missing in" in selected.stdout.str()
    assert (results / "boards" / "mini" / "board.md").exists()
    assert not (pytester.path / "leaderboards" / "mini").exists()
    # the npo item reused its stored record, and gd was deselected: no record was written or rewritten
    assert {k: v for k, v in _tree(results).items() if not k.startswith("boards/")} == stored


def test_failed_entry_fails_and_last_failed_reruns_only_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    board = fixture_board(pytester.path, methods="[{method: ga, label: GA}, {method: nan_loss}]")
    results = copy_mini_records(tmp_path / "results")
    for record in (results / "runs").glob("*/result.json"):
        if json.loads(record.read_text())["status"] == "failed":
            record.unlink()  # the NaN run is not stored: its item runs it (GA's is reused)
    plugin = f"--ubench-plugin={PLUGINS / 'nan_method.py'}"
    first = _run(pytester, results, str(board), plugin)
    first.assert_outcomes(passed=1, failed=1)
    assert "non-finite loss nan at step 1" in first.stdout.str()
    again = _run(pytester, results, str(board), plugin, "--lf")
    again.assert_outcomes(failed=1, deselected=1)


def test_bad_board_is_a_one_line_collection_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    board = mini_board(pytester.path, methods="[{method: nop}]")
    result = _run(pytester, tmp_path / "results", str(board))
    assert result.ret != 0
    assert "unknown method 'nop'; did you mean 'npo'" in result.stdout.str()


@pytest.mark.parametrize("autoload", ["installed", "checkout"])
def test_the_committed_board_collects_with_the_plugin_registered_once(autoload: str) -> None:
    """In a checkout the root ``conftest.py`` loads the plug-in; where the package is installed its ``pytest11``
    entry point has already registered the same module under the same name, and pytest does not register it again.
    ``checkout`` turns entry-point plug-ins off, as in a checkout before any install."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    if autoload == "checkout":
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    result = subprocess.run([sys.executable, "-m", "pytest", "leaderboards/synthetic.yaml", "--collect-only", "-q",
                             "-p", "no:cacheprovider", "--trace-config"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "21 tests collected" in result.stdout, result.stdout[-2000:]
    assert result.stdout.count("PLUGIN registered: <module 'bench.pytest_plugin'") == 1, result.stdout[-2000:]


def test_a_board_named_on_the_command_line_is_collected_wherever_it_lives(pytester: pytest.Pytester,
                                                                          tmp_path: Path) -> None:
    """``pytest path/to/board.yaml`` collects the board outside a ``leaderboards`` folder too; collecting that
    folder does not take its YAML files for boards (fixture YAMLs stay fixtures)."""
    board = mini_board(pytester.path)
    elsewhere = pytester.path / "boards" / "mini.yaml"
    elsewhere.parent.mkdir()
    board.rename(elsewhere)
    named = _run(pytester, tmp_path / "results", str(elsewhere), "--collect-only", "-q")
    assert named.ret == 0 and "3 tests collected" in named.stdout.str(), named.stdout.str()
    folder = _run(pytester, tmp_path / "results", str(elsewhere.parent), "--collect-only", "-q")
    assert "no tests collected" in folder.stdout.str(), folder.stdout.str()


@pytest.mark.parametrize("expression", ["GA or NPO", "not GA", "npo and seed0", "GA and not KL", "leaderboards and npo",
                                        "mini.yaml and not (npo or KL)", "nothing"])
def test_ubench_run_k_selects_the_entries_pytest_k_selects(pytester: pytest.Pytester, tmp_path: Path,
                                                           expression: str) -> None:
    """``ubench run -k`` and ``pytest -k`` take the same expression language and select the same entries: pytest's
    own matcher over the names of the entry's node id (folders, board file, ``task/split/method/seedN``)."""
    board = fixture_board(pytester.path)  # GA, GA+KL and npo
    collected = _run(pytester, tmp_path / "results", str(board), "--collect-only", "-q", "-k", expression)
    by_pytest = [line.split("::", 1)[1] for line in collected.outlines if "mini.yaml::" in line]
    by_ubench = [cell.name for cell in select_cells(plan(LeaderboardSpec.load(board), check_data=False), expression,
                                                    board.relative_to(pytester.path))]
    assert by_ubench == by_pytest
