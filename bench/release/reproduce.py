"""``ubench reproduce BOARD[@RELEASE]``: rerun (or read) a board's cells and check them against a release.

Tolerance model (``bench.release.bundle.TOLERANCE``, stored in every release manifest):

* **cell** (one task, method, seed): each board column of the rerun record against the released one: ``identical``
  (bit for bit), ``printed`` (equal at the board's printed precision: 3 decimals, 1 for PrivLeak), ``within``
  (inside the released record's own 95% bootstrap interval over items), else ``differs``;
* **row** (a method over its seeds): the rerun mean inside the released row's 95% hierarchical bootstrap interval
  over seeds and items (``bench.board.seedstats``); a row outside it is reported;
* **conclusions**: the sort column's significance groups (the best row and the rows statistically tied with it)
  and every row's 95% rank interval membership of the best group. The command exits 1 when the best group differs,
  0 otherwise: numbers may move within their uncertainty, a conclusion may not.

The released records come from the release bundle (``records/``: their evidence), so a reproduction needs no
access to the store the release was made from.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.board.table import build_table, ranking
from bench.grid.cells import read_board
from bench.grid.columns import printed_digits, record_value
from bench.release.bundle import BUNDLE, load_manifest, read_bundle, read_manifests
from bench.release.snapshot import releases_dir
from bench.run.migrate import migrate_store
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

LEVELS = ("identical", "printed", "within", "differs")


def compare_value(column: str, released: float | None, rerun: float | None,
                  interval: tuple[float | None, float | None]) -> str:
    """The tolerance level one rerun value reaches against the released one (``LEVELS``)."""
    if released is None or rerun is None:
        return "identical" if released is None and rerun is None else "differs"
    if released == rerun or (np.isnan(released) and np.isnan(rerun)):
        return "identical"
    digits = printed_digits(column)
    if round(released, digits) == round(rerun, digits):
        return "printed"
    low, high = interval
    if low is not None and high is not None and low <= rerun <= high:
        return "within"
    return "differs"


@dataclass
class Report:
    version: str
    cells: dict[str, dict[str, str]] = field(default_factory=dict)  # cell name -> column -> level
    rows_outside: list[str] = field(default_factory=list)
    best_released: tuple[str, ...] = ()
    best_rerun: tuple[str, ...] = ()

    @property
    def conclusions_agree(self) -> bool:
        return set(self.best_released) == set(self.best_rerun)

    def worst(self, cell: str) -> str:
        return max(self.cells[cell].values(), key=LEVELS.index, default="identical")

    def lines(self) -> list[str]:
        counts = {level: sum(self.worst(c) == level for c in self.cells) for level in LEVELS}
        out = [f"release {self.version}: {len(self.cells)} cells: " +
               ", ".join(f"{n} {level}" for level, n in counts.items() if n)]
        for cell, columns in self.cells.items():
            worst = self.worst(cell)
            bad = [c for c, level in columns.items() if level == "differs"]
            out.append(f"  {cell}: {worst}" + (f" ({', '.join(bad)})" if bad else ""))
        out += [f"  row outside the released interval: {r}" for r in self.rows_outside]
        verdict = "agree" if self.conclusions_agree else "DIFFER"
        out.append(f"conclusions {verdict}: best group released {{{', '.join(self.best_released)}}}, "
                   f"rerun {{{', '.join(self.best_rerun)}}}")
        return out


def released_store(board: LeaderboardSpec, version: str, root: Path) -> Store:
    """A store at ``root`` holding the release's records (from its bundle), re-keyed where the release predates
    the versions in the ids (``bench.run.migrate``), so the current code finds them."""
    files = read_bundle(releases_dir(board) / version / BUNDLE)
    store = Store(root)
    store.restore({path.removeprefix("records/"): data for path, data in files.items() if path.startswith("records/")})
    migrate_store(store)
    return store


def latest_version(board: LeaderboardSpec) -> str:
    manifests = read_manifests(board)
    if not manifests:
        raise SpecError(f"{board.path}: board {board.name} has no release to reproduce (ubench release first)")
    return manifests[-1]["version"]


def compare(board: LeaderboardSpec, store: Store, version: str) -> Report:
    """Compare the board's records in ``store`` (the rerun) with release ``version`` (``TOLERANCE``)."""
    load_manifest(board, version)  # a one-line error for an unknown version
    report = Report(version)
    with tempfile.TemporaryDirectory(prefix="ubench-release-") as scratch:
        released = released_store(board, version, Path(scratch))
        old_records, new_records = read_board(board, released), read_board(board, store)
        for cell, old, new in zip(new_records.cells, old_records.records, new_records.records):
            report.cells[cell.name] = _compare_records(board, old, new)
        before, after = build_table(board, released, old_records), build_table(board, store, new_records)
    key = board.sort.by
    for (_, b), (_, a) in zip(before.iterrows(), after.iterrows()):
        low, high = b.get(f"{key} ci_low", np.nan), b.get(f"{key} ci_high", np.nan)
        if np.isfinite(low) and np.isfinite(a[key]) and not low <= a[key] <= high:
            report.rows_outside.append(f"{a['task']} {a['method']}: {a[key]:.3f} not in [{low:.3f}, {high:.3f}]")
    for task in dict.fromkeys(before["task"]):
        old_rank, new_rank = ranking(before, task, key), ranking(after, task, key)
        report.best_released += old_rank.tied if old_rank else ()
        report.best_rerun += new_rank.tied if new_rank else ()
    return report


def _compare_records(board: LeaderboardSpec, old: RunRecord | None, new: RunRecord | None) -> dict[str, str]:
    """Each board column's tolerance level; every column is ``identical`` when the two records' evidence is."""
    if old is None or new is None:
        return {"record": "differs"}
    if old.evidence() == new.evidence():
        return dict.fromkeys(board.all_columns, "identical")
    return {column: compare_value(column, record_value(old, column), record_value(new, column),
                                  (record_value(old, column, "ci_low"), record_value(old, column, "ci_high")))
            for column in board.all_columns}

