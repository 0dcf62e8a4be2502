"""Publishing a board: build its tables from stored records and write ``board.md``, ``board.csv``, the plots and
``board.html``, naming the release the records are; never replacing a board's own tables with those of a store that
lacks its records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from bench.board.geffect_plots import geffect_plots
from bench.board.html import write_html
from bench.board.markdown import to_markdown
from bench.board.plots import PLOT_NAME, plot_paths, tradeoff_plot
from bench.board.table import build_table
from bench.grid.cells import read_board
from bench.release.bundle import release_line, release_status
from bench.runtime.store import Store, atomic_write_text
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError


class NoRecordsError(SpecError):
    """The store holds no record of any cell of the board: there is nothing to tabulate (``ubench``: exit 2)."""


def store_tables_dir(store_root: str | Path, board: LeaderboardSpec) -> Path:
    """Where tables built from a store go when they must not replace a board's own tables:
    ``<store>/boards/<name>/`` (``Store.tables_folder``)."""
    return Store(store_root).tables_folder(board.name)


def with_output(board: LeaderboardSpec, folder: str | Path) -> LeaderboardSpec:
    """``board`` with its tables (and releases) redirected to ``folder`` (its ``output``, made absolute)."""
    return dataclasses.replace(board, output=str(Path(folder).resolve()))


def write_tables(board: LeaderboardSpec, store: Store, redirect_partial: bool = True,
                 ) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Build the table from stored records (each read once: ``bench.grid.cells.read_board``) and write
    ``<out_dir>/board.md``, ``board.csv``, the trade-off plot(s) (``bench.board.plots``; keys ``tradeoff...`` in the
    returned paths) and the G-effect plots in ``<out_dir>/geffect/`` (``bench.board.geffect_plots``; keys
    ``geffect/<stem>``), each atomically, then the self-contained ``board.html`` with those plots embedded
    (``bench.board.html``; key ``html``).

    Tables built from a store that lacks the board's records never replace the board's own tables:

    - no record of any cell: ``NoRecordsError`` (a ``SpecError``) naming the store, and nothing is written;
    - some cells missing (an interrupted run, a ``-k`` subset): with ``redirect_partial`` (the default) the tables
      go to ``<store>/boards/<name>/`` (``store_tables_dir``) instead of ``out_dir``; without it (the caller chose
      ``out_dir``, e.g. ``ubench board --out``) to ``out_dir``. Either way ``table.attrs["tables_note"]`` is a one-line
      message saying where they went and why (it is "" for a complete store);
    - plots of an earlier build are deleted only when every cell has a record (a folder fully rewritten).
    """
    records = read_board(board, store)
    missing, n_cells = records.missing(), len(records.cells)
    if len(missing) == n_cells:
        raise NoRecordsError(f"{board.path}: no record of any of the board's {n_cells} cells in the store "
                             f"{Path(store.root).resolve()}; nothing written (run the board, or pass the store "
                             "that holds its records)")
    complete = not missing
    note = ""
    if missing:
        shown = f"{len(missing)} of {n_cells} cells missing in {store.root}"
        target = store_tables_dir(store.root, board).resolve()
        if redirect_partial and target != board.out_dir.resolve():
            note = f"{shown}: wrote tables to {target}; the committed tables in {board.out_dir} are unchanged"
            board = with_output(board, target)
        else:
            note = f"{shown}: wrote partial tables to {board.out_dir}"
    table = build_table(board, store, records)
    table.attrs["tables_note"] = note

    status = release_status(board, store, records=records)
    table.attrs["release"] = release_line(board, store, status)  # "" without releases: the tables are unchanged
    release_text = None if status is None else (
        f"{status.version} (content hash sha256:{status.content_hash[:16]}…)" if status.current
        else f"unreleased changes since {status.version}")
    out = board.out_dir
    paths = {"markdown": out / "board.md", "csv": out / "board.csv"}
    base = out / PLOT_NAME
    written = tradeoff_plot(board, store, base, records)
    if complete:
        for stale in set(plot_paths(board, base).values()) - set(written):
            stale.unlink(missing_ok=True)  # a plot of an earlier build whose task has no trade-off data now
    paths.update({p.stem: p for p in written})
    g_written = geffect_plots(board, store, prune=complete, records=records)
    paths.update({f"geffect/{p.stem}": p for p in g_written})
    g_names = [str(p.relative_to(out)) for p in g_written]
    atomic_write_text(paths["markdown"], to_markdown(board, table, [p.name for p in written], g_names))
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))

    paths["html"] = write_html(board, table, store, [p.name for p in written], g_names, release_text, records)
    return table, paths
