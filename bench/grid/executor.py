"""The executor interface: ``Executor.run`` gives the record of every cell, skipping those already stored;
``InProcessExecutor`` runs them one after another in this process. Where else they can run: ``bench.grid.executors``.

**One cell, one computation, across runs** (issue 18). An executor takes its cells from a ``CellQueue`` one at a
time, at the moment it starts one, and the queue claims each first (``bench.runtime.claims``): a cell another live
run has claimed is set aside, and one stored meanwhile is reported as stored. Once its own cells are done, ``run``
waits for the set-aside ones: each is reported as stored when its owner writes it, computed here when its owner
died or gave it up without a record, and reported missing when its owner runs on another host (its liveness cannot
be checked from here). Claims are released as each record is written and when the run ends, however it ends.
"""

from __future__ import annotations

import fcntl
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.data.tasks import load_task
from bench.grid.cells import Cell, cell_record, run_cell
from bench.run.references import get_references
from bench.runtime.claims import Claim, Claims
from bench.runtime.distributed import world
from bench.runtime.paths import cache_dir
from bench.runtime.progress import note, warn
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

OnDone = Callable[[int, Cell, RunRecord, bool], None]
OnStart = Callable[[int, Cell], None]
WAIT_SECONDS = 2.0  # how often a run looks for the records of cells that another run computes


class ExecutorError(SpecError):
    """A bad executor choice (unknown name, Ray missing, ``--address`` without Ray): one line, exit 2."""


class IncompleteRun(Exception):
    """A run ended without the record of some cells: ``missing`` holds each cell and why (its worker died, or a run
    on another host computes it). The stored cells stay; a rerun resumes."""

    def __init__(self, missing: list[tuple[Cell, str]]) -> None:
        self.missing = missing
        super().__init__("; ".join(f"{cell.name}: {why}" for cell, why in missing))


class CellQueue:
    """The cells of one run still to compute (``todo``, indices into ``cells``), handed out by ``next`` as an executor
    starts one; ``done`` and ``lost`` end a cell. Cells claimed by another live run wait in ``aside`` until
    ``wait_aside`` (see the module docstring); ``missing`` holds the cells the run ends without, and why."""

    def __init__(self, cells: Sequence[Cell], board: LeaderboardSpec, store: Store, reuse: bool, claims: Claims,
                 report: Callable[[int, RunRecord, bool], None], on_start: OnStart | None = None) -> None:
        self.cells, self.board, self.store, self.reuse = cells, board, store, reuse
        self.claims, self.report, self.on_start = claims, report, on_start
        self.todo: deque[int] = deque()
        self.aside: dict[int, Claim] = {}
        self.missing: dict[int, str] = {}

    def report_stored(self, i: int) -> bool:
        """Report cell ``i`` as stored when the store holds its record; whether it does."""
        record = cell_record(self.cells[i], self.board, self.store)
        if record is not None:
            self.report(i, record, True)
        return record is not None

    def next(self) -> int | None:
        """The next cell to compute, claimed for this run (None: none left). Cells stored meanwhile (with ``reuse``)
        are reported on the way, and cells claimed by another live run set aside."""
        while self.todo:
            i = self.todo.popleft()
            cell = self.cells[i]
            if self.reuse and self.report_stored(i):
                continue
            other = self.claims.take(cell.spec.run_id, cell.name)
            if other is not None:
                self.aside[i] = other
                continue
            if self.reuse and self.report_stored(i):  # its owner stored it and let go between the check and the claim
                self.claims.release(cell.spec.run_id)
                continue
            if self.on_start:
                self.on_start(i, cell)
            return i
        return None

    def done(self, i: int, record: RunRecord) -> None:
        """Cell ``i`` ended with ``record`` (stored by whoever ran it): release its claim and report it."""
        self.claims.release(self.cells[i].spec.run_id)
        self.report(i, record, False)

    def lost(self, i: int, why: str) -> None:
        """Cell ``i`` ended without a record (its worker died; the executor said so): release its claim; the run ends
        incomplete."""
        self.claims.release(self.cells[i].spec.run_id)
        self.missing[i] = why

    def wait_aside(self, poll: float = WAIT_SECONDS) -> None:
        """Wait until no cell is aside or one is back in ``todo``: a cell is reported as stored once its owner let
        go of it with its record written; back in ``todo`` when its owner let go without one or died (``next`` then
        takes its claim over); missing when its owner runs on another host."""
        announced = False
        while True:
            for i in list(self.aside):
                self._recheck(i)
            if not self.aside or self.todo:
                return
            if not announced:
                owners = sorted({claim.owner() for claim in self.aside.values()})
                note(f"waiting for {len(self.aside)} cell(s) that another ubench run ({', '.join(owners)}) is "
                     f"computing: {', '.join(self.cells[i].name for i in self.aside)}")
                announced = True
            time.sleep(poll)

    def _recheck(self, i: int) -> None:
        claim = self.claims.current(self.cells[i].spec.run_id)
        if claim is not None and claim.alive():
            if not claim.local:
                del self.aside[i]
                self.missing[i] = f"running elsewhere ({claim.owner()}, since {claim.claimed})"
                warn(f"{self.cells[i].name} is running elsewhere ({claim.owner()}, since {claim.claimed}); rerun "
                     f"when it ends")
            return
        del self.aside[i]
        if claim is not None or not self.report_stored(i):
            self.todo.append(i)


class Executor(ABC):
    """Runs a board's cells. ``plugins``: plug-in files (registering methods) that worker processes must load."""

    name = ""

    def __init__(self, plugins: Sequence[str] = ()) -> None:
        self.plugins = tuple(dict.fromkeys(str(Path(p).resolve()) for p in plugins))

    def run(self, cells: Sequence[Cell], board: LeaderboardSpec, store: Store, reuse: bool = True,
            on_done: OnDone | None = None, on_start: OnStart | None = None) -> list[RunRecord]:
        """The record of every cell, in ``cells`` order. Cells with a stored record are not run again when
        ``reuse``; a cell another live run computes is waited for (see the module docstring). ``on_start(index,
        cell)`` is called as a cell starts here, ``on_done(index, cell, record, cached)`` as each ends (in completion
        order when cells run concurrently). Raises ``IncompleteRun`` when some cells end without a record, after
        every other cell has ended."""
        records: list[RunRecord | None] = [None] * len(cells)

        def report(i: int, record: RunRecord, cached: bool) -> None:
            records[i] = record
            if on_done:
                on_done(i, cells[i], record, cached)

        # the processes of one data-parallel run compute every cell together: they claim nothing
        with Claims(store, enabled=world()[1] == 1) as claims:
            queue = CellQueue(cells, board, store, reuse, claims, report, on_start)
            queue.todo.extend(i for i in range(len(cells)) if not (reuse and queue.report_stored(i)))
            while queue.todo:
                self._run_pending(cells, queue, board, store, reuse)
                queue.wait_aside()
        if queue.missing:
            raise IncompleteRun([(cells[i], why) for i, why in sorted(queue.missing.items())])
        return records  # type: ignore[return-value]

    @abstractmethod
    def _run_pending(self, cells: Sequence[Cell], queue: CellQueue, board: LeaderboardSpec, store: Store,
                     reuse: bool) -> None:
        """Run the cells ``queue.next()`` hands out until it gives None, ending each with ``queue.done(i, record)``
        (or ``queue.lost(i, why)``). ``queue.todo`` lists the cells it may still hand out."""

    def describe(self) -> str:
        return self.name


class InProcessExecutor(Executor):
    """One cell after another, in this process (which has already loaded the plug-ins)."""

    name = "inprocess"

    def _run_pending(self, cells, queue, board, store, reuse) -> None:
        while (i := queue.next()) is not None:
            queue.done(i, run_cell(cells[i], board, store, reuse=reuse))


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
