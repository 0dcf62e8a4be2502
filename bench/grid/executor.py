"""The executor interface: ``Executor.run`` gives the record of every cell, skipping those already stored;
``InProcessExecutor`` runs them one after another in this process. Where else they can run: ``bench.grid.executors``.
"""

from __future__ import annotations

import fcntl
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.data.tasks import load_task
from bench.grid.cells import Cell, cell_record, run_cell
from bench.run.references import get_references
from bench.runtime.paths import cache_dir
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

OnDone = Callable[[int, Cell, RunRecord, bool], None]


class ExecutorError(SpecError):
    """A bad executor choice (unknown name, Ray missing, ``--address`` without Ray): one line, exit 2."""


class Executor(ABC):
    """Runs a board's cells. ``plugins``: plug-in files (registering methods) that worker processes must load."""

    name = ""

    def __init__(self, plugins: Sequence[str] = ()) -> None:
        self.plugins = tuple(dict.fromkeys(str(Path(p).resolve()) for p in plugins))

    def run(self, cells: Sequence[Cell], board: LeaderboardSpec, store: Store, reuse: bool = True,
            on_done: OnDone | None = None) -> list[RunRecord]:
        """The record of every cell, in ``cells`` order. Cells with a stored record are not run again when
        ``reuse``. ``on_done(index, cell, record, cached)`` is called as each finishes (in completion order when
        cells run concurrently)."""
        records: list[RunRecord | None] = [None] * len(cells)
        pending = []
        for i, cell in enumerate(cells):
            stored = cell_record(cell, board, store) if reuse else None
            if stored is not None:
                records[i] = stored
                if on_done:
                    on_done(i, cell, stored, True)
            else:
                pending.append(i)

        def done(i: int, record: RunRecord) -> None:
            records[i] = record
            if on_done:
                on_done(i, cells[i], record, False)

        if pending:
            self._run_pending(cells, pending, board, store, reuse, done)
        return records  # type: ignore[return-value]

    @abstractmethod
    def _run_pending(self, cells: Sequence[Cell], pending: list[int], board: LeaderboardSpec, store: Store,
                     reuse: bool, done: Callable[[int, RunRecord], None]) -> None:
        """Run ``cells[i]`` for every ``i`` in ``pending``, calling ``done(i, record)`` as each finishes."""

    def describe(self) -> str:
        return self.name


class InProcessExecutor(Executor):
    """One cell after another, in this process (which has already loaded the plug-ins)."""

    name = "inprocess"

    def _run_pending(self, cells, pending, board, store, reuse, done) -> None:
        for i in pending:
            done(i, run_cell(cells[i], board, store, reuse=reuse))


def tiny_tasks(cells: Sequence[Cell], pending: Sequence[int]) -> list[tuple[str, str]]:
    """The (task, split) pairs of the pending cells that use the task's tiny models (not a model preset)."""
    return list(dict.fromkeys((cells[i].task.task, cells[i].task.split) for i in pending if not cells[i].task.model))


@contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock between processes on this machine (``<cache>/locks/<name>.lock``), e.g. pytest-xdist
    workers that would otherwise build and evaluate the same references side by side."""
    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_references(task: str, split: str, store: Store) -> None:
    """Build (or load) the tokenizer, target, oracle and reference evaluations of (task, split) into ``store``, one
    process at a time (a second caller waits, then finds them built)."""
    with file_lock(f"refs-{task}-{split}"):
        get_references(load_task(task, split), store)
