"""Executors: where a board's cells run.

Every (task, method, seed, trial) cell is independent and its record is a pure function of its spec, so any
executor gives the same records (up to ``timings`` and ``env``); they differ only in where the work happens:

- ``InProcessExecutor``: one cell after another in this process (``-j 1``, and always under ``accelerate launch`` /
  ``torchrun``, where every process runs every cell data-parallel).
- ``LocalPoolExecutor(jobs)``: ``jobs`` spawned worker processes on this machine, each with ``compute_threads()``
  torch threads (the default, ``jobs = default_jobs()``). The models are tiny: one process with two intra-op threads
  leaves part of a 2-core CPU idle between small matmuls, while two single-threaded processes keep both cores busy.
  The tokenizer is built first, then the target and the oracle side by side in two workers, then the reference
  evaluations in this process, so no two workers build the same model.
- ``RayExecutor(address)``: each cell a Ray task (``num_cpus`` per cell, and one GPU per cell where the cluster has
  GPUs), on a local Ray instance (``ray.init()``, the machine's CPUs) or on a cluster (``address``). The workers
  load the plug-in files, run the cell and write its record into the store themselves, so the store must be a path
  every node sees (a shared file system on a cluster), as must the model cache (``$UBENCH_CACHE``) and the checkout.

``Executor.run`` returns the record of every cell in ``cells`` order; a cell with a stored record is skipped
(``reuse``), so an interrupted grid resumes where it stopped. Records are written atomically into the shared store
by whichever process runs the cell, exactly as a sequential run writes them.
"""

from __future__ import annotations

import importlib.util
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.numerics import compute_threads
from bench.spec import SpecError

if TYPE_CHECKING:
    from bench.leaderboard import Cell
    from bench.spec import LeaderboardSpec
    from bench.store import Store

EXECUTORS = ("inprocess", "pool", "ray")
OnDone = Callable[[int, "Cell", dict, bool], None]
# environment forwarded to Ray workers (on a cluster they do not inherit the driver's)
_FORWARD_PREFIXES = ("UBENCH_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")


class ExecutorError(SpecError):
    """A bad executor choice (unknown name, Ray missing, ``--address`` without Ray): one line, exit 2."""


def default_jobs() -> int:
    """Worker processes for a board: 1 with a CUDA device (one GPU, one process), else the CPU count, at most 4."""
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


class Executor(ABC):
    """Runs a board's cells. ``plugins``: plug-in files (registering methods) that worker processes must load."""

    name = ""

    def __init__(self, plugins: Sequence[str] = ()) -> None:
        self.plugins = tuple(dict.fromkeys(str(Path(p).resolve()) for p in plugins))

    def run(self, cells: Sequence[Cell], board: LeaderboardSpec, store: Store, reuse: bool = True,
            on_done: OnDone | None = None) -> list[dict]:
        """The record of every cell, in ``cells`` order. Cells with a stored record are not run again when
        ``reuse``. ``on_done(index, cell, record, cached)`` is called as each finishes (in completion order when
        cells run concurrently)."""
        from bench.leaderboard import cell_record

        records: list[dict | None] = [None] * len(cells)
        pending = []
        for i, cell in enumerate(cells):
            stored = cell_record(cell, board, store) if reuse else None
            if stored is not None:
                records[i] = stored
                if on_done:
                    on_done(i, cell, stored, True)
            else:
                pending.append(i)

        def done(i: int, record: dict) -> None:
            records[i] = record
            if on_done:
                on_done(i, cells[i], record, False)

        if pending:
            self._run_pending(cells, pending, board, store, reuse, done)
        return records  # type: ignore[return-value]

    @abstractmethod
    def _run_pending(self, cells: Sequence[Cell], pending: list[int], board: LeaderboardSpec, store: Store,
                     reuse: bool, done: Callable[[int, dict], None]) -> None:
        """Run ``cells[i]`` for every ``i`` in ``pending``, calling ``done(i, record)`` as each finishes."""

    def describe(self) -> str:
        return self.name


class InProcessExecutor(Executor):
    """One cell after another, in this process (which has already loaded the plug-ins)."""

    name = "inprocess"

    def _run_pending(self, cells, pending, board, store, reuse, done) -> None:
        from bench.leaderboard import run_cell

        for i in pending:
            done(i, run_cell(cells[i], board, store, reuse=reuse))


def _tiny_tasks(cells: Sequence[Cell], pending: Sequence[int]) -> list[tuple[str, str]]:
    """The (task, split) pairs of the pending cells that use the task's tiny models (not a model preset)."""
    return list(dict.fromkeys((cells[i].task.task, cells[i].task.split) for i in pending if not cells[i].task.model))


@contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock between processes on this machine (``<cache>/locks/<name>.lock``), e.g. pytest-xdist
    workers that would otherwise build and evaluate the same references side by side."""
    import fcntl

    from bench.paths import cache_dir

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
    from bench.data.tasks import load_task
    from bench.runner import get_references

    with file_lock(f"refs-{task}-{split}"):
        get_references(load_task(task, split), store)


# --- local worker processes -------------------------------------------------------------------------------------

def _init_worker(threads: int, plugins: Sequence[str]) -> None:
    import torch

    from bench.cli import _quiet
    from bench.registry import METHODS

    torch.set_num_threads(threads)
    _quiet()
    for path in plugins:
        METHODS.load_plugin_file(path)


def _warm_worker(seconds: float) -> int:
    """Import what a cell needs, then hold the worker a moment so that the next call goes to another one."""
    import bench.leaderboard  # noqa: F401
    import bench.runner  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def _build_in_worker(task: str, split: str, kind: str) -> str:
    from bench.data.tasks import load_task
    from bench.models.tiny import get_model

    return str(get_model(load_task(task, split), kind).path)


def _run_in_worker(cell: Cell, board: LeaderboardSpec, root: str, reuse: bool) -> dict:
    from bench.leaderboard import run_cell
    from bench.store import Store

    return run_cell(cell, board, Store(Path(root)), reuse=reuse)


class LocalPoolExecutor(Executor):
    """``jobs`` spawned worker processes with ``threads`` torch threads each (default
    ``bench.numerics.compute_threads``: every number is computed at one thread count, whatever the entry point).

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
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

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

    def _submit_all(self, pool, cells, pending, board, store, reuse, done) -> None:
        from concurrent.futures import as_completed

        from bench.data.tasks import load_task
        from bench.models.tiny import get_tokenizer
        from bench.runner import get_references

        tasks = _tiny_tasks(cells, pending)
        # the models first, target and oracle side by side (the tokenizer before them, which both need), then the
        # reference evaluations here, so no two workers build or evaluate the same thing
        for task, split in tasks:
            get_tokenizer(load_task(task, split))
        builds = [pool.submit(_build_in_worker, task, split, kind) for task, split in tasks
                  for kind in ("target", "oracle")]
        for build in builds:
            build.result()
        for task, split in tasks:
            get_references(load_task(task, split), store)
        futures = {pool.submit(_run_in_worker, cells[i], board, str(store.root.resolve()), reuse): i
                   for i in pending}
        for future in as_completed(futures):
            done(futures[future], future.result())


# --- Ray ----------------------------------------------------------------------------------------------------------

_RAY_PLUGINS: set[str] = set()


def _ray_setup(threads: int, plugins: Sequence[str]) -> None:
    """In a Ray worker (reused across tasks): torch threads, quiet logging, the plug-in files (once each)."""
    import torch

    torch.set_num_threads(max(1, threads))
    if not _RAY_PLUGINS:
        from bench.cli import _quiet

        _quiet()
        _RAY_PLUGINS.add("")
    from bench.registry import METHODS

    for path in plugins:
        if path not in _RAY_PLUGINS:
            METHODS.load_plugin_file(path)
            _RAY_PLUGINS.add(path)


def _ray_build(task: str, split: str, kind: str, threads: int) -> str:
    _ray_setup(threads, ())
    return _build_in_worker(task, split, kind)


def _ray_references(task: str, split: str, root: str, threads: int) -> None:
    from bench.data.tasks import load_task
    from bench.runner import get_references
    from bench.store import Store

    _ray_setup(threads, ())
    get_references(load_task(task, split), Store(Path(root)))


def _ray_cell(cell: Cell, board: LeaderboardSpec, root: str, reuse: bool, threads: int,
              plugins: Sequence[str]) -> dict:
    _ray_setup(threads, plugins)
    return _run_in_worker(cell, board, root, reuse)


def _ray_env() -> dict[str, str]:
    from bench.paths import REPO_ROOT

    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_PREFIXES)}
    path = [str(REPO_ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


class RayExecutor(Executor):
    """Each cell a Ray task. ``address``: an existing cluster (``ray://host:10001``, ``host:6379`` or ``auto``);
    None starts a local instance with ``num_cpus`` CPUs (default: the machine's) and stops it afterwards (one that
    is already running in this process is used as is). ``gpus_per_cell``: None = 1 where the cluster has GPUs, else
    0. ``cpus_per_cell`` is also each cell's torch thread count. ``jobs`` > 0 caps the cells in flight.

    Workers get the checkout on their ``PYTHONPATH`` and the driver's ``UBENCH_*`` / ``HF_*`` environment, load
    the plug-in files, and write records into the store at its absolute path. Cells on a model preset run in this
    process when the cluster has no GPU (one pretrained model at a time, as the local pool does)."""

    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_cell: float | None = None, cpus_per_cell: int = 1,
                 jobs: int = 0, num_cpus: int | None = None, plugins: Sequence[str] = ()) -> None:
        if not ray_available():
            raise ExecutorError("--executor ray: ray is not installed (pip install 'ray[default]')")
        super().__init__(plugins)
        self.address = address
        self.gpus_per_cell = gpus_per_cell
        self.cpus_per_cell = max(1, cpus_per_cell)
        self.jobs = max(0, jobs)
        self.num_cpus = num_cpus

    def describe(self) -> str:
        where = f"cluster {self.address}" if self.address else "local instance"
        return f"ray ({where})"

    @contextmanager
    def _session(self) -> Iterator[Any]:
        import logging

        import ray

        started = not ray.is_initialized()
        if started:
            options: dict[str, Any] = {"runtime_env": {"env_vars": _ray_env()}, "log_to_driver": False,
                                       "logging_level": logging.ERROR}
            if self.address:
                options["address"] = self.address
            else:
                options.update(num_cpus=self.num_cpus or os.cpu_count() or 1, include_dashboard=False)
            ray.init(**options)
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()

    def _run_pending(self, cells, pending, board, store, reuse, done) -> None:
        with self._session() as ray:
            gpus = self.gpus_per_cell
            cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
            if gpus is None:
                gpus = 1 if cluster_gpus > 0 else 0
            local = [i for i in pending if cells[i].task.model and cluster_gpus == 0]
            remote = [i for i in pending if i not in local]
            root = str(store.root.resolve())
            threads = self.cpus_per_cell
            options = {"num_cpus": self.cpus_per_cell, "num_gpus": gpus}
            tasks = _tiny_tasks(cells, remote)
            if tasks:
                from bench.data.tasks import load_task
                from bench.models.tiny import get_tokenizer

                for task, split in tasks:
                    get_tokenizer(load_task(task, split))
                build = ray.remote(_ray_build).options(**options)
                ray.get([build.remote(task, split, kind, threads) for task, split in tasks
                         for kind in ("target", "oracle")])
                refs = ray.remote(_ray_references).options(**options)
                ray.get([refs.remote(task, split, root, threads) for task, split in tasks])
            cell_task = ray.remote(_ray_cell).options(**options, max_retries=0)
            queue = list(remote)
            in_flight: dict[Any, int] = {}
            limit = self.jobs or len(queue)
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    i = queue.pop(0)
                    in_flight[cell_task.remote(cells[i], board, root, reuse, threads, self.plugins)] = i
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    done(in_flight.pop(ref), ray.get(ref))
            if local:
                InProcessExecutor(self.plugins)._run_pending(cells, local, board, store, reuse, done)


def make_executor(name: str | None, jobs: int = 0, address: str | None = None,
                  plugins: Sequence[str] = ()) -> Executor:
    """The executor of ``ubench run --executor NAME -j JOBS --address ADDR``. No name: the local pool with
    ``jobs`` (default ``default_jobs()``) workers, in process when that is 1. Raises ExecutorError on a bad
    choice before anything runs."""
    if jobs < 0:
        raise ExecutorError(f"-j/--jobs: must be >= 0, got {jobs}")
    if name is not None and name not in EXECUTORS:
        raise ExecutorError(f"--executor: unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
    if address and name != "ray":
        if not ray_available():
            raise ExecutorError("--address: a Ray cluster needs ray, which is not installed (pip install "
                                "'ray[default]'), and --executor ray")
        raise ExecutorError(f"--address {address}: a cluster address is for --executor ray, not "
                            f"{name or 'the default local pool'}")
    if name == "ray":
        return RayExecutor(address=address, jobs=jobs, plugins=plugins)
    if name == "inprocess":
        return InProcessExecutor(plugins)
    jobs = jobs or default_jobs()
    return InProcessExecutor(plugins) if jobs == 1 else LocalPoolExecutor(jobs, plugins=plugins)
