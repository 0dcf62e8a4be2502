"""Ray: each cell of a board a Ray task, on a local Ray instance or a cluster (``RayExecutor``)."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from bench.data.tasks import load_task
from bench.grid.cells import Cell, run_cell
from bench.grid.executor import Executor, ExecutorError, tiny_tasks
from bench.grid.pool import build_in_worker, run_in_worker
from bench.models.tiny import get_tokenizer
from bench.registry import METHODS
from bench.run.references import get_references
from bench.runtime.logs import quiet
from bench.runtime.paths import REPO_ROOT
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec

# environment forwarded to Ray workers (on a cluster they do not inherit the driver's)
_FORWARD_PREFIXES = ("UBENCH_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


_RAY_PLUGINS: set[str] = set()


def _ray_setup(threads: int, plugins: Sequence[str]) -> None:
    """In a Ray worker (reused across tasks): torch threads, quiet logging, the plug-in files (once each)."""
    torch.set_num_threads(max(1, threads))
    if not _RAY_PLUGINS:
        quiet()
        _RAY_PLUGINS.add("")
    for path in plugins:
        if path not in _RAY_PLUGINS:
            METHODS.load_plugin_file(path)
            _RAY_PLUGINS.add(path)


def _ray_build(task: str, split: str, kind: str, threads: int) -> str:
    _ray_setup(threads, ())
    return build_in_worker(task, split, kind)


def _ray_references(task: str, split: str, root: str, threads: int) -> None:
    _ray_setup(threads, ())
    get_references(load_task(task, split), Store(Path(root)))


def _ray_cell(cell: Cell, board: LeaderboardSpec, root: str, reuse: bool, threads: int,
              plugins: Sequence[str]) -> RunRecord:
    _ray_setup(threads, plugins)
    return run_in_worker(cell, board, root, reuse)


def _ray_env() -> dict[str, str]:
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
        import ray  # optional (the dev extra): only --executor ray needs it; ray_available() checks first

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

    def _run_pending(self, cells, queue, board, store, reuse) -> None:
        with self._session() as ray:
            gpus = self.gpus_per_cell
            cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
            if gpus is None:
                gpus = 1 if cluster_gpus > 0 else 0
            options = {"num_cpus": self.cpus_per_cell, "num_gpus": gpus}
            root = str(store.root.resolve())
            tasks = tiny_tasks(cells, [i for i in queue.todo if not cells[i].task.model])
            if tasks:
                self._prepare(ray, tasks, root, options)
            local = self._remote_cells(ray, cells, queue, board, root, reuse, options, in_process=cluster_gpus == 0)
            for i in local:
                queue.done(i, run_cell(cells[i], board, store, reuse=reuse))

    def _prepare(self, ray: Any, tasks: list[tuple[str, str]], root: str, options: dict) -> None:
        """The tokenizers here, then the models and the reference evaluations as Ray tasks."""
        for task, split in tasks:
            get_tokenizer(load_task(task, split))
        build = ray.remote(_ray_build).options(**options)
        ray.get([build.remote(task, split, kind, self.cpus_per_cell) for task, split in tasks
                 for kind in ("target", "oracle")])
        refs = ray.remote(_ray_references).options(**options)
        ray.get([refs.remote(task, split, root, self.cpus_per_cell) for task, split in tasks])

    def _remote_cells(self, ray: Any, cells, queue, board, root: str, reuse: bool, options: dict,
                      in_process: bool) -> list[int]:
        """Run the queue's cells as Ray tasks, at most ``jobs`` in flight; returns the cells (claimed) that must run
        in this process instead (a model preset on a cluster without GPUs)."""
        cell_task = ray.remote(_ray_cell).options(**options, max_retries=0)
        in_flight: dict[Any, int] = {}
        local: list[int] = []
        while True:
            while not self.jobs or len(in_flight) < self.jobs:
                i = queue.next()
                if i is None:
                    break
                if in_process and cells[i].task.model:
                    local.append(i)
                    continue
                in_flight[cell_task.remote(cells[i], board, root, reuse, self.cpus_per_cell, self.plugins)] = i
            if not in_flight:
                return local
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                queue.done(in_flight.pop(ref), ray.get(ref))
