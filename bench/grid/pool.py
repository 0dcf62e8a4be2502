"""The local worker pool: a board's cells on ``jobs`` spawned processes of this machine (``LocalPoolExecutor``), run by
``bench.grid.workers.WorkerSlots`` (why not ``concurrent.futures``: see there). A worker that dies loses only its own
cell: ``ubench: worker for CELL died (signal 9); rerun to resume`` names it, the other cells go on (its slot starts
a fresh worker), and the run ends with ``IncompleteRun``. A worker that dies while building a model or evaluating a
reference ends the run the same way (``WorkerDied``) once the jobs in flight have ended: no cell can start without
them."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from bench.data.tasks import load_task
from bench.grid.cells import Cell, run_cell
from bench.grid.executor import CellQueue, Executor, InProcessExecutor, file_lock, tiny_tasks
from bench.grid.workers import Job, WorkerSlots
from bench.models.tiny import get_model, get_tokenizer
from bench.registry import METHODS
from bench.run.references import get_references
from bench.runtime.logs import quiet
from bench.runtime.numerics import compute_threads
from bench.runtime.progress import progress_shown, show_progress, slow_step, warn
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec


def _init_worker(threads: int, plugins: Sequence[str], progress: bool) -> None:
    torch.set_num_threads(threads)
    quiet()
    # tqdm (datasets' thread_map) otherwise makes a process-shared lock, a named semaphore that a worker killed with
    # its cell never unregisters: the resource tracker then warns of a "leaked semaphore" when the run ends
    tqdm.set_lock(threading.RLock())
    if progress:
        show_progress()
    for path in plugins:
        METHODS.load_plugin_file(path)


def _warm_worker(seconds: float) -> int:
    """Hold the worker (which imported the harness with this module) a moment."""
    time.sleep(seconds)
    return os.getpid()


def build_in_worker(task: str, split: str, kind: str) -> str:
    with slow_step(f"{task}/{split}: the {kind} model"):
        return str(get_model(load_task(task, split), kind).path)


def references_in_worker(task: str, split: str, replicate: int, kinds: tuple[str, ...], root: str,
                         attacks: tuple[str, ...] = ()) -> None:
    """The reference evaluations ``kinds`` of one replicate, one process of this machine at a time (a second run on
    the same store waits, then loads them)."""
    with file_lock(f"refs-{task}-{split}-{replicate}"), \
            slow_step(f"{task}/{split}: {' and '.join(kinds)} reference evaluation, replicate {replicate}"):
        get_references(load_task(task, split), Store(Path(root)), replicate=replicate, kinds=kinds, attacks=attacks)


def run_in_worker(cell: Cell, board: LeaderboardSpec, root: str, reuse: bool) -> RunRecord:
    return run_cell(cell, board, Store(Path(root)), reuse=reuse)


def _jobs(queue: deque[Job]) -> Callable[[], Job | None]:
    """``next_job`` for ``WorkerSlots.run``: the queue's jobs in order (jobs appended meanwhile included)."""
    return lambda: queue.popleft() if queue else None


def _ignore(_job: Job, _result: Any) -> None:
    return None


class LocalPoolExecutor(Executor):
    """``jobs`` spawned worker processes with ``threads`` torch threads each (default
    ``bench.runtime.numerics.compute_threads``: every number is computed at one thread count, whatever the entry point).

    Used plainly, ``run`` starts the workers, runs the cells and stops them; one pending cell, ``jobs == 1`` or a
    model preset (one pretrained model at a time, in this process and on its GPU) runs in this process instead. Used
    as a context manager, the workers stay up across ``run`` calls and every cell runs in a worker (``warm`` waits
    until all workers have started and imported the harness: ``ubench perf --only grid`` times warm workers)."""

    name = "pool"

    def __init__(self, jobs: int, threads: int | None = None, plugins: Sequence[str] = ()) -> None:
        super().__init__(plugins)
        self.jobs = max(1, jobs)
        self.threads = threads or compute_threads()
        self._slots: WorkerSlots | None = None

    def describe(self) -> str:
        return f"pool of {self.jobs} worker(s) x {self.threads} thread(s)"

    def _new_slots(self, workers: int) -> WorkerSlots:
        return WorkerSlots(workers, _init_worker, (self.threads, self.plugins, progress_shown()))

    def __enter__(self) -> LocalPoolExecutor:
        self._slots = self._new_slots(self.jobs)
        return self

    def __exit__(self, exc_type: type | None, *exc: Any) -> None:
        if self._slots is not None:
            self._slots.close(kill=exc_type is not None)
            self._slots = None

    def warm(self) -> None:
        """Start every worker of the open pool and import the harness in it."""
        if self._slots is None:
            raise RuntimeError("warm() needs the pool open: use `with LocalPoolExecutor(...) as pool`")
        self._slots.start()
        self._slots.run(_jobs(deque(Job("warm-up", _warm_worker, (0.0,)) for _ in range(self.jobs))), _ignore)

    def _run_pending(self, cells, queue, board, store, reuse) -> None:
        todo = list(queue.todo)
        if self._slots is None and (self.jobs <= 1 or len(todo) <= 1 or any(cells[i].task.model for i in todo)):
            InProcessExecutor(self.plugins)._run_pending(cells, queue, board, store, reuse)
            return
        if self._slots is not None:
            self._grid(self._slots, cells, queue, board, store, reuse)
            return
        with self._new_slots(min(self.jobs, len(todo))) as slots:
            self._grid(slots, cells, queue, board, store, reuse)

    @staticmethod
    def _prepare(slots: WorkerSlots, tasks: list[tuple[str, str]], replicates: list[int], store: Store,
                 attacks: tuple[str, ...]) -> None:
        """The tokenizer here, then target and oracle side by side in the workers, then every replicate's reference
        evaluations: the oracles side by side first, each target as soon as its oracle's record exists (6
        evaluations on 2 workers: 3 rounds). No two workers build or evaluate the same thing; a record already stored
        is only loaded."""
        for task, split in tasks:
            with slow_step(f"{task}/{split}: the tokenizer"):
                get_tokenizer(load_task(task, split))
        builds = deque(Job(f"the {kind} model of {task}/{split}", build_in_worker, (task, split, kind))
                       for task, split in tasks for kind in ("target", "oracle"))
        slots.run(_jobs(builds), _ignore)
        root = str(store.root.resolve())
        evaluations = deque(_reference_job(task, split, seed, "oracle", root, attacks)
                            for task, split in tasks for seed in replicates)

        def then_target(job: Job, _result: Any) -> None:
            if job.key[-1] == "oracle":
                evaluations.append(_reference_job(*job.key[:3], "target", root, attacks))

        slots.run(_jobs(evaluations), then_target)

    def _grid(self, slots: WorkerSlots, cells: Sequence[Cell], queue: CellQueue, board: LeaderboardSpec,
              store: Store, reuse: bool) -> None:
        todo = list(queue.todo)
        attacks = tuple(cells[todo[0]].spec.model.get("attacks", {})) if todo else ()
        self._prepare(slots, tiny_tasks(cells, todo), sorted({cells[i].seed for i in todo}), store, attacks)
        root = str(store.root.resolve())

        def next_cell() -> Job | None:
            i = queue.next()
            return None if i is None else Job(cells[i].name, run_in_worker, (cells[i], board, root, reuse), i)

        def lost(job: Job, how: str) -> None:
            warn(f"worker for {job.name} died ({how}); rerun to resume")
            queue.lost(job.key, f"its worker died ({how})")

        slots.run(next_cell, lambda job, record: queue.done(job.key, record), lost)


def _reference_job(task: str, split: str, seed: int, kind: str, root: str, attacks: Iterable[str]) -> Job:
    return Job(f"the {kind} reference of {task}/{split} replicate {seed}", references_in_worker,
               (task, split, seed, (kind,), root, tuple(attacks)), (task, split, seed, kind))
