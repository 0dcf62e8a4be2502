"""A board's cells: ``plan`` turns a board into validated ``RunSpec``s (every column, name and hyper-parameter
checked before anything runs); ``run_cell`` runs one; ``cell_record`` finds the stored record that represents one
(the run itself, or the selected trial of a calibrated search)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.grid.columns import check_columns
from bench.grid.search import search, search_id_of
from bench.registry import METHODS
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec, MethodEntry, TaskEntry
from bench.specs.mapping import SpecError
from bench.specs.run import RunSpec
from bench.specs.tiers import tier_trials


@dataclass(frozen=True)
class Cell:
    """One leaderboard entry: a (task, method, seed) with its RunSpec."""

    task: TaskEntry
    method: MethodEntry
    seed: int
    spec: RunSpec

    @property
    def name(self) -> str:
        """``task/split/method/seedN``: pytest splits node ids on ``::``, so a name must not contain it."""
        return f"{self.task.label}/{self.method.display}/seed{self.seed}"


def plan(board: LeaderboardSpec) -> list[Cell]:
    """Every cell of ``board``; raises SpecError/RegistryError naming the file and entry on any bad input."""
    check_columns(board)
    cells = []
    for t_index, task in enumerate(board.tasks):
        for m_index, entry in enumerate(board.methods):
            if entry.plugin:
                METHODS.load_plugin_file(entry.plugin)
            for seed in board.seeds:
                try:
                    spec = make_run_spec(task.task, task.split, entry.method, entry.params, board.budget, seed,
                                         board.path, f"methods[{m_index}]", control=board.control,
                                         requests=task.requests, adapter=board.adapter, model=task.model)
                except SpecError as exc:
                    if "unknown task" in str(exc):
                        raise SpecError(f"{board.path}: tasks[{t_index}].task: {exc}") from exc
                    raise
                cells.append(Cell(task, entry, seed, spec))
    labels = [c.method.display for c in cells]
    dupes = {label for label in labels if labels.count(label) > len(board.seeds) * len(board.tasks)}
    if dupes:
        raise SpecError(f"{board.path}: methods: entries share a label {sorted(dupes)}; give each a distinct 'label'")
    return cells


def trials_per_cell(board: LeaderboardSpec) -> int:
    """Hyper-parameter trials each cell gets: the tier's allowance (1: the entry's own parameters only)."""
    return tier_trials(board.budget.tier) if board.budget.tier else 1


def search_args(cell: Cell, board: LeaderboardSpec) -> dict:
    return {"task": cell.task.task, "split": cell.task.split, "method": cell.method.method,
            "base_params": cell.method.params, "budget": board.budget, "seed": cell.seed, "control": board.control,
            "n_trials": trials_per_cell(board)}


def run_cell(cell: Cell, board: LeaderboardSpec, store: Store, reuse: bool = True) -> dict:
    """Run one board cell and return the record that represents it: the run itself, or, when the tier allows
    several trials, the selected trial of a calibrated search (arXiv 2406.09179) with ``search`` attached (the
    first trial's record when none succeeded)."""
    if trials_per_cell(board) == 1:
        return execute(cell.spec, store, reuse=reuse)
    result = search(**search_args(cell, board), store=store)
    chosen = result.best or result.trials[0]
    record = dict(store.load("runs", chosen.run_id) or {})
    record["search"] = {"search_id": result.search_id, "selected": result.selected, "n_trials": result.n_trials}
    return record


def search_file(cell: Cell, board: LeaderboardSpec, store: Store) -> Path | None:
    """The stored summary of the calibrated search a search-tier cell's record is selected from, or None."""
    args = search_args(cell, board)
    search_id = search_id_of(cell.spec.task, args["split"], args["method"], args["base_params"], args["budget"],
                             args["seed"], args["control"], args["n_trials"])
    path = store.root / "searches" / f"{search_id}.json"
    return path if path.is_file() else None


def cell_record(cell: Cell, board: LeaderboardSpec, store: Store) -> dict | None:
    """The stored record that represents ``cell`` (see ``run_cell``), or None if it has not run. A search summary
    whose chosen trial is not the run the current code would make of its parameters (a method or metric version
    bumped since: another run id) counts as not run, so the search is redone rather than its stale record shown."""
    if trials_per_cell(board) == 1:
        return store.load("runs", cell.spec.run_id)
    path = search_file(cell, board, store)
    if path is None:
        return None
    summary = json.loads(path.read_text())
    trials = summary.get("trials") or []
    index = summary.get("selected")
    chosen = trials[index] if index is not None else (trials[0] if trials else None)
    if not chosen:
        return None
    current = make_run_spec(cell.task.task, cell.task.split, cell.method.method, chosen["params"], board.budget,
                            cell.seed, control=board.control)
    return store.load("runs", chosen["run_id"]) if chosen["run_id"] == current.run_id else None


def ok_cell_records(board: LeaderboardSpec, store: Store):
    """Per task and method entry of ``board`` (in board order, with the entry's index): the ``ok`` records that
    represent its cells (``cell_record``), each with its seed. The plots read their series from this."""
    cells = plan(board)
    for task in board.tasks:
        for index, entry in enumerate(board.methods):
            records = ((c.seed, cell_record(c, board, store)) for c in cells if c.task == task and c.method == entry)
            yield task, index, entry, [(seed, r) for seed, r in records if r and r.get("status") == "ok"]


def missing_cells(board: LeaderboardSpec, store: Store) -> tuple[list[Cell], int]:
    """The cells of ``board`` that ``store`` holds no record for (``cell_record`` is None), and the number of
    cells. A failed record counts as present: a failed run is a result."""
    cells = plan(board)
    return [c for c in cells if cell_record(c, board, store) is None], len(cells)
