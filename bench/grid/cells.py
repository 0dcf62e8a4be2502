"""A board's cells: ``plan`` turns a board into validated ``RunSpec``s (every column, name and hyper-parameter
checked before anything runs); ``run_cell`` runs one; ``cell_record`` finds the stored record that represents one
(the run itself, or the selected trial of a calibrated search); ``read_board`` reads, once, every record a board
shows (``BoardRecords``: what its tables, plots, HTML and release are built from)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from bench.attacks.base import CHEAP, attack_names
from bench.grid.columns import check_columns
from bench.grid.names import check_method_names
from bench.grid.search import search, search_id_of
from bench.registry import ATTACKS, METHODS, RegistryError
from bench.run.execute import execute
from bench.run.origin import entry_origin
from bench.run.references import REFERENCE_KINDS, task_reference_id
from bench.run.runspec import make_run_spec
from bench.runtime.records import ReferenceRecord, RunRecord
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


def board_attacks(board: LeaderboardSpec) -> tuple[str, ...]:
    """The attacks the board runs, sorted: its ``attacks`` with ``cheap`` / ``all`` expanded to the registered
    attacks of that cost; an unknown name raises a one-line error naming the board file."""
    names: set[str] = set()
    for i, name in enumerate(board.attacks):
        if name in (CHEAP, "all"):
            names.update(attack_names(None if name == "all" else CHEAP))
        elif name in ATTACKS:
            names.add(name)
        else:
            try:
                ATTACKS.get(name)
            except RegistryError as exc:
                raise SpecError(f"{board.path}: attacks[{i}]: {exc} (or cheap / all)") from None
    return tuple(sorted(names))


def plan(board: LeaderboardSpec, check_data: bool = True) -> list[Cell]:
    """Every cell of ``board``; raises SpecError/RegistryError naming the file and entry on any bad input. Without
    ``check_data`` the task families and forget sets are not checked (no task data is loaded): the cells a board
    rebuild reads the records of."""
    for path in board.plugin_files:  # before the columns are checked: a plug-in may register a column's metric
        METHODS.load_plugin_file(path)
    check_columns(board)
    attacks = board_attacks(board)
    sources = board.method_sources()
    check_method_names(board, sources)
    cells = []
    for t_index, task in enumerate(board.tasks):
        for entry, (source, where) in zip(board.methods, sources):
            for seed in board.seeds:
                try:
                    spec = make_run_spec(task.task, task.split, entry.method, entry.params, board.budget, seed,
                                         source, where, control=board.control,
                                         requests=task.requests, adapter=board.adapter, model=task.model,
                                         check_data=check_data, attacks=attacks)
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


def run_cell(cell: Cell, board: LeaderboardSpec, store: Store, reuse: bool = True) -> RunRecord:
    """Run one board cell and return the record that represents it: the run itself, or, when the tier allows
    several trials, the selected trial of a calibrated search (arXiv 2406.09179) with its ``search`` selection
    (the first trial's record when none succeeded)."""
    submitted = entry_origin(board, cell.method)  # a submitted entry's paper, authors and BibTeX, for the record
    if trials_per_cell(board) == 1:
        return execute(cell.spec, store, reuse=reuse, submitted=submitted, keep_models=board.keep_models)
    result = search(**search_args(cell, board), store=store, submitted=submitted)
    chosen = result.best or result.trials[0]
    record = store.load_run(chosen.run_id) or RunRecord(id=chosen.run_id)
    return replace(record, search=result.selection)


def cell_search_id(cell: Cell, board: LeaderboardSpec) -> str:
    """The id of the calibrated search a search-tier cell's record is selected from."""
    args = search_args(cell, board)
    return search_id_of(cell.spec.task, args["split"], args["method"], args["base_params"], args["budget"],
                        args["seed"], args["control"], args["n_trials"])


def cell_record(cell: Cell, board: LeaderboardSpec, store: Store) -> RunRecord | None:
    """The stored record that represents ``cell`` (see ``run_cell``), or None if it has not run. A search summary
    whose chosen trial is not the run the current code would make of its parameters (a method or metric version
    bumped since: another run id) counts as not run, so the search is redone rather than its stale record shown."""
    if trials_per_cell(board) == 1:
        return store.load_run(cell.spec.run_id)
    summary = store.load_search(cell_search_id(cell, board))
    if summary is None or not summary.trials:
        return None
    chosen = summary.best or summary.trials[0]
    current = make_run_spec(cell.task.task, cell.task.split, cell.method.method, chosen.params, board.budget,
                            cell.seed, control=board.control, check_data=False, attacks=board_attacks(board))
    record = store.load_run(chosen.run_id) if chosen.run_id == current.run_id else None
    return None if record is None else replace(record, search=summary.selection)


@dataclass
class BoardRecords:
    """What a board's tables, plots, HTML and release are built from, read once per write: its cells (planned
    without loading any task data), the stored record that represents each (``cell_record``), the reference
    records of each task, and the G-effect measurements of the runs (read on first use). Reference ids come from
    the task configs and the shipped weights' hashes (``bench.run.references.task_reference_id``), so nothing here
    needs a dataset or a model."""

    board: LeaderboardSpec
    store: Store
    cells: list[Cell]
    records: list[RunRecord | None]  # in ``cells`` order
    reference_ids: dict[tuple[str, str], list[str]]  # (task label, kind) -> distinct ids over the seeds
    references: dict[str, ReferenceRecord | None]  # id -> record (None: missing)
    _measurements: dict[str, list[dict]] = field(default_factory=dict)

    def entry(self, task: TaskEntry, method: MethodEntry) -> list[tuple[Cell, RunRecord | None]]:
        """The cells of one board entry (task, method entry) with their records, in seed order."""
        return [(c, r) for c, r in zip(self.cells, self.records) if c.task == task and c.method == method]

    def missing(self) -> list[Cell]:
        """The cells the store holds no record of. A failed record counts as present: a failed run is a result."""
        return [c for c, r in zip(self.cells, self.records) if r is None]

    def ok_entries(self) -> Iterator[tuple[TaskEntry, int, MethodEntry, list[tuple[int, RunRecord]]]]:
        """Per task and method entry (in board order, with the entry's index): the ``ok`` records of its cells, each
        with its seed. The plots read their series from this."""
        for task in self.board.tasks:
            for index, method in enumerate(self.board.methods):
                yield task, index, method, [(c.seed, r) for c, r in self.entry(task, method) if r is not None and r.ok]

    def reference_records(self, task: TaskEntry, kind: str) -> tuple[list[ReferenceRecord], int]:
        """The stored reference records of ``kind`` of a task (one per distinct replicate) and how many there
        should be."""
        ids = self.reference_ids[(task.label, kind)]
        return [r for r in (self.references[i] for i in ids) if r is not None], len(ids)

    def measurements(self, record: RunRecord) -> list[dict]:
        """A run's G-effect measurements (``Store.measurements``), read once."""
        if record.id not in self._measurements:
            self._measurements[record.id] = self.store.measurements(record.id)
        return self._measurements[record.id]


def read_board(board: LeaderboardSpec, store: Store) -> BoardRecords:
    """Plan ``board`` once (``check_data=False``) and read every record it shows from ``store``."""
    cells = plan(board, check_data=False)
    records = [cell_record(c, board, store) for c in cells]
    attacks = board_attacks(board)
    reference_ids = {(task.label, kind): list(dict.fromkeys(task_reference_id(task.task, task.split, task.model, kind,
                                                                              seed, attacks) for seed in board.seeds))
                     for task in board.tasks for kind in REFERENCE_KINDS}
    references = {i: store.load_reference(i) for ids in reference_ids.values() for i in ids}
    return BoardRecords(board, store, cells, records, reference_ids, references)
