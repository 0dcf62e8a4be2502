"""The command line: bad input is one line and exit 2 with nothing written; runs and boards from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli.main import main

from .conftest import copy_mini_records, fixture_board, mini_board


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ubench: error: ") and "\n" not in err, err
    return err


def test_unknown_method_suggests_and_writes_nothing(tmp_path: Path, env_results: Path, capsys) -> None:
    board = mini_board(tmp_path, methods="[{method: ga}, {method: nop}]")
    assert main(["run", str(board)]) == 2
    err = _one_line_error(capsys)
    assert "unknown method 'nop'" in err and "did you mean 'npo'" in err and str(board) in err
    assert not env_results.exists()
    assert not (board.parent / "mini").exists()


def test_misspelled_field_names_file_and_field(tmp_path: Path, env_results: Path, capsys) -> None:
    board = mini_board(tmp_path, extra="sort_by: forget_quality\n")
    assert main(["run", str(board)]) == 2
    err = _one_line_error(capsys)
    assert f"{board}: sort_by: unknown field" in err
    assert not env_results.exists()


def test_bad_hyperparameter_and_unknown_column(tmp_path: Path, env_results: Path, capsys) -> None:
    board = mini_board(tmp_path, methods="[{method: npo, params: {beta: -1}}]")
    assert main(["run", str(board)]) == 2
    assert "methods[0].params.beta: must be > 0" in _one_line_error(capsys)
    board = mini_board(tmp_path)
    board.write_text(board.read_text().replace("forget/prob", "forget/porb"))
    assert main(["run", str(board)]) == 2
    assert "columns[1]: unknown metric 'porb'; did you mean 'prob'" in _one_line_error(capsys)
    assert not env_results.exists()


def test_run_then_board_from_records(tmp_path: Path, env_results: Path, capsys) -> None:
    """A ``-k`` subset leaves the store partial: its tables go to ``<store>/boards/<name>/``, not next to the board.
    The store is a copy of the fixture records: ``ga``'s cell is stored, ``gd``'s is not."""
    copy_mini_records(env_results)
    board = fixture_board(tmp_path, methods="[{method: ga}, {method: gd}]")
    assert main(["run", str(board), "-k", "ga"]) == 0
    out = capsys.readouterr().out
    assert "/ga/seed0: ok [stored]" in out and "/gd/" not in out.split("#")[0]
    assert main(["board", str(board)]) == 0
    out = capsys.readouterr().out
    assert ("| ga " in out or "| **ga** " in out) and "missing 1 of 1" in out
    written = env_results / "boards" / "mini"
    assert f"ubench: 1 of 2 cells missing in {env_results}: wrote tables to {written.resolve()}" in out
    assert (written / "board.md").exists() and not (board.parent / "mini").exists()


def test_failed_cell_exits_1_and_is_on_the_board(tmp_path: Path, env_results: Path, capsys) -> None:
    board = mini_board(tmp_path, methods="[{method: nan_loss}]")
    plugin = Path(__file__).parent / "plugins" / "nan_method.py"
    code = main(["run", str(board), "--plugin", str(plugin)])
    assert code == 1
    out = capsys.readouterr().out
    assert "failed (non-finite loss nan at step 1)" in out


def test_ls_lists_registered_entries(capsys) -> None:
    assert main(["ls", "methods"]) == 0
    out = capsys.readouterr().out
    assert "npo" in out and "gd" in out


def test_tables_from_another_store_never_overwrite_a_committed_board(tmp_path: Path, capsys) -> None:
    """``ubench board leaderboards/synthetic.yaml --results OTHER`` writes its tables under OTHER/boards/synthetic/,
    not over the committed ones (``--out`` names the folder explicitly); an OTHER without the board's records is
    exit 2 with nothing written (tests/test_committed_tables.py covers the partial and complete stores)."""
    import argparse

    from bench.cli.common import redirect_output as _with_output
    from bench.runtime.paths import REPO_ROOT
    from bench.specs.board import LeaderboardSpec

    spec = REPO_ROOT / "leaderboards" / "synthetic.yaml"
    committed = REPO_ROOT / "leaderboards" / "synthetic"
    other = tmp_path / "other-store"
    board = LeaderboardSpec.load(spec)
    redirected = _with_output(board, argparse.Namespace(results=str(other), out=None))
    assert redirected.out_dir == (other / "boards" / "synthetic").resolve()
    out = tmp_path / "tables"
    assert _with_output(board, argparse.Namespace(results=str(other), out=str(out))).out_dir == out.resolve()
    before = {p.name: p.read_bytes() for p in committed.glob("board.*")}
    assert main(["board", str(spec), "--results", str(other)]) == 2
    assert f"no record of any of the board's 21 cells in the store {other.resolve()}" in _one_line_error(capsys)
    assert {p.name: p.read_bytes() for p in committed.glob("board.*")} == before
    assert not other.exists()


def test_run_k_takes_a_pytest_expression(tmp_path: Path, env_results: Path, capsys) -> None:
    """``-k 'GA or npo'`` selects both stored entries (the expression of ``pytest -k``); a malformed one is a
    one-line error, exit 2."""
    copy_mini_records(env_results)
    board = fixture_board(tmp_path, methods="[{method: ga, label: GA}, {method: gd}, {method: npo}]")
    assert main(["run", str(board), "-k", "GA or npo"]) == 0
    out = capsys.readouterr().out.split("#")[0]
    assert "/GA/seed0: ok [stored]" in out and "/npo/seed0: ok [stored]" in out and "/gd/" not in out
    assert main(["run", str(board), "-k", "GA or"]) == 2
    assert f"{board}: -k: invalid expression 'GA or': at column 6: expected" in _one_line_error(capsys)


@pytest.mark.parametrize(("package", "expected"), [
    ("randlabel-ubench", "method: unknown method 'random_label' (install its package: pip install randlabel-ubench)"),
    ("", "method: unknown method 'random_label'"),
])
def test_an_uninstalled_submitted_method_names_its_entry_file(tmp_path: Path, env_results: Path, capsys,
                                                               package: str, expected: str) -> None:
    """A method from an entry file (``ubench submit``) that is no longer registered (its package uninstalled) is
    reported at the entry file, not at a ``methods[i]`` the board file does not have, with the package to install
    where the entry names it."""
    copy_mini_records(env_results)
    board = fixture_board(tmp_path, methods="[{method: ga, label: GA}]")
    entry = board.parent / "mini" / "entries" / "randlabel.yaml"
    entry.parent.mkdir(parents=True)
    entry.write_text("method: random_label\nversion: '1'\nlabel: RandLabel\npaper: P\nauthors: [A]\ntier: smoke\n"
                     + (f"package: {package}\n" if package else ""))
    assert main(["board", str(board)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"ubench: error: {entry}: {expected}") and "methods[1]" not in err, err
