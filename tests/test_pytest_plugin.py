"""The pytest plug-in: a leaderboard YAML collects one item per entry; -k selects; --lf reruns failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import PLUGINS, mini_board


def _run(pytester: pytest.Pytester, results: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", f"--ubench-results={results}", *args)


def test_collects_entries_and_writes_the_board(pytester: pytest.Pytester, tmp_path: Path) -> None:
    board = mini_board(pytester.path)
    results = tmp_path / "results"
    collected = _run(pytester, results, str(board), "--collect-only", "-q")
    names = [line for line in collected.outlines if "mini.yaml::" in line]
    assert len(names) == 3 and any("/npo/seed0" in n for n in names)
    assert not results.exists() and not (pytester.path / "leaderboards" / "mini").exists()  # nothing ran
    selected = _run(pytester, results, str(board), "-k", "npo")
    selected.assert_outcomes(passed=1, deselected=2)
    assert "leaderboard mini v1" in selected.stdout.str()
    # two of the three cells have no record: the tables go under the store, not next to the board
    assert "2 of 3 cells missing in" in selected.stdout.str()
    assert (results / "boards" / "mini" / "board.md").exists()
    assert not (pytester.path / "leaderboards" / "mini").exists()


def test_failed_entry_fails_and_last_failed_reruns_only_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    board = mini_board(pytester.path, methods="[{method: ga}, {method: nan_loss}]")
    results = tmp_path / "results"
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
