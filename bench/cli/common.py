"""What the ``ubench`` commands share: loading plug-in files, where a board's tables go, and printing them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.board.markdown import to_markdown
from bench.registry import METHODS
from bench.release.publish import store_tables_dir, with_output
from bench.runtime.paths import REPO_ROOT, results_dir


def redirect_output(board, args: argparse.Namespace):
    """The board with its tables redirected: to ``--out`` when given; else, for a store other than the default
    one (``--results``), to ``<results>/boards/<name>/`` (``bench.release.publish.store_tables_dir``) when the spec is
    a committed board of this checkout, so tables built from another store never overwrite the committed ones. A
    board file elsewhere keeps its tables next to it. (``write_tables`` itself sends the tables of a store that
    lacks some of the board's cells to that same folder.)"""
    out = getattr(args, "out", None)
    results = getattr(args, "results", None)
    if not out and results and Path(results).resolve() != results_dir().resolve():
        committed = (REPO_ROOT / "leaderboards").resolve()
        if Path(board.path).resolve().parent == committed:
            out = store_tables_dir(results, board)
    if not out:
        return board
    return with_output(board, out)


def print_tables(board, table, paths: dict) -> None:
    """The board as markdown, where its tables went and, when the store lacks some cells, why they went there."""
    print(to_markdown(board, table))
    print(f"wrote {paths['markdown']} and {paths['csv']}")
    if table.attrs.get("tables_note"):
        print(f"ubench: {table.attrs['tables_note']}")


def load_plugins(paths: Sequence[str]) -> None:
    for path in paths:
        METHODS.load_plugin_file(path)
