"""The local worker pool: a board's cells on ``jobs`` spawned processes of this machine (``LocalPoolExecutor``)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from bench.data.tasks import load_task
from bench.grid.cells import Cell, run_cell
from bench.grid.executor import Executor, InProcessExecutor, tiny_tasks
from bench.models.tiny import get_model, get_tokenizer
from bench.registry import METHODS
from bench.run.references import get_references
from bench.runtime.logs import quiet
from bench.runtime.numerics import compute_threads
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec


def _init_worker(threads: int, plugins: Sequence[str]) -> None:
    torch.set_num_threads(threads)
    quiet()
    for path in plugins:
        METHODS.load_plugin_file(path)


def _warm_worker(seconds: float) -> int:
    """Hold the worker (which imported the harness with this module) a moment, so that the next call goes to
    another one."""
    time.sleep(seconds)
    return os.getpid()


def build_in_worker(task: str, split: str, kind: str) -> str:
    return str(get_model(load_task(task, split), kind).path)


def references_in_worker(task: str, split: str, replicate: int, kinds: tuple[str, ...], root: str,
                         attacks: tuple[str, ...] = ()) -> None:
    get_references(load_task(task, split), Store(Path(root)), replicate=replicate, kinds=kinds, attacks=attacks)


def run_in_worker(cell: Cell, board: LeaderboardSpec, root: str, reuse: bool) -> RunRecord:
    return run_cell(cell, board, Store(Path(root)), reuse=reuse)


class LocalPoolExecutor(Executor):
    """``jobs`` spawned worker processes with ``threads`` torch threads each (default
    ``bench.runtime.numerics.compute_threads``: every number is computed at one thread count, whatever the entry point).

    Used plainly, ``run`` starts the pool, runs the cells and stops it; one pending cell, ``jobs == 1`` or a model
    preset (one pretrained model at a time, in this process and on its GPU) runs in this process instead. Used as a
    context manager, the pool stays open across ``run`` calls and every cell runs in a worker (``warm`` waits until
    all workers have started and imported the harness: ``ubench perf --only grid`` times warm workers)."""

    name = "pool"

    def __init__(self, jobs: int, threads: int | None = None, plugins: Sequence[str] = ()) -> None:
        super().__init__(plugins)
        self.jobs = max(1, jobs)
        self.threads = threads or compute_threads()
        self._pool = None

    def describe(self) -> str:
        return f"pool of {self.jobs} worker(s) x {self.threads} thread(s)"

    def _new_pool(self, workers: int):
        context = get_context("spawn")  # a fork of a process that already ran torch can deadlock in OpenMP
        return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                   initargs=(self.threads, self.plugins))

    def __enter__(self) -> LocalPoolExecutor:
        self._pool = self._new_pool(self.jobs)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def warm(self) -> None:
        """Start every worker of the open pool and import the harness in it."""
        if self._pool is None:
            raise RuntimeError("warm() needs the pool open: use `with LocalPoolExecutor(...) as pool`")
        seen: set[int] = set()
        for _ in range(20):
            futures = [self._pool.submit(_warm_worker, 0.3) for _ in range(self.jobs)]
            seen.update(f.result() for f in futures)
            if len(seen) >= self.jobs:
                return

    def _run_pending(self, cells, pending, board, store, reuse, done) -> None:
        if self._pool is None and (self.jobs <= 1 or len(pending) <= 1 or any(cells[i].task.model for i in pending)):
            InProcessExecutor(self.plugins)._run_pending(cells, pending, board, store, reuse, done)
            return
        if self._pool is not None:
            self._submit_all(self._pool, cells, pending, board, store, reuse, done)
            return
        with self._new_pool(min(self.jobs, len(pending))) as pool:
            self._submit_all(pool, cells, pending, board, store, reuse, done)

    @staticmethod
    def _references(pool, tasks: list[tuple[str, str]], replicates: list[int], store: Store,
                    attacks: tuple[str, ...] = ()) -> None:
        """Every replicate's reference evaluations in the workers: the oracles side by side first, each target as
        soon as its oracle's record exists (6 evaluations on 2 workers: 3 rounds, where the parent alone took 2
        rounds for replicate 0 while the workers idled). A record already stored is only loaded."""
        root = str(store.root.resolve())
        oracles = {pool.submit(references_in_worker, task, split, seed, ("oracle",), root, attacks): (task, split, seed)
                   for task, split in tasks for seed in replicates}
        targets = [pool.submit(references_in_worker, *oracles[future], ("target",), root, attacks)
                   for future in as_completed(oracles) if future.result() is None]
        for future in targets:
            future.result()

    def _submit_all(self, pool, cells, pending, board, store, reuse, done) -> None:
        tasks = tiny_tasks(cells, pending)
        # the models first, target and oracle side by side (the tokenizer before them, which both need), then the
        # reference evaluations here, so no two workers build or evaluate the same thing
        for task, split in tasks:
            get_tokenizer(load_task(task, split))
        builds = [pool.submit(build_in_worker, task, split, kind) for task, split in tasks
                  for kind in ("target", "oracle")]
        for build in builds:
            build.result()
        attacks = tuple(cells[pending[0]].spec.model.get("attacks", {})) if pending else ()
        self._references(pool, tasks, sorted({cells[i].seed for i in pending}), store, attacks)
        futures = {pool.submit(run_in_worker, cells[i], board, str(store.root.resolve()), reuse): i
                   for i in pending}
        for future in as_completed(futures):
            done(futures[future], future.result())
