"""Executors: where a board's cells run.

Every (task, method, seed, trial) cell is independent and its record is a pure function of its spec, so any
executor gives the same records (up to ``timings`` and ``env``); they differ only in where the work happens:

- ``InProcessExecutor``: one cell after another in this process (``-j 1``, and always under ``accelerate launch`` /
  ``torchrun``, where every process runs every cell data-parallel).
- ``LocalPoolExecutor(jobs)``: ``jobs`` spawned worker processes on this machine, each with ``compute_threads()``
  torch threads (the default, ``jobs = default_jobs()``). The models are tiny: one process with two intra-op threads
  leaves part of a 2-core CPU idle between small matmuls, while two single-threaded processes keep both cores busy.
  The tokenizer is built first, then the target and the oracle side by side in two workers, then the reference
  evaluations in the workers, so no two workers build the same model. A worker that dies loses only its own cell
  (``bench.grid.workers``).
- ``RayExecutor(address)``: each cell a Ray task (``num_cpus`` per cell, and one GPU per cell where the cluster has
  GPUs), on a local Ray instance (``ray.init()``, the machine's CPUs) or on a cluster (``address``). The workers
  load the plug-in files, run the cell and write its record into the store themselves, so the store must be a path
  every node sees (a shared file system on a cluster), as must the model cache (``$UBENCH_CACHE``) and the checkout.

``Executor.run`` returns the record of every cell in ``cells`` order; a cell with a stored record is skipped
(``reuse``), so an interrupted grid resumes where it stopped, and a cell that another run is computing is claimed by
it and waited for, not computed twice (``bench.grid.executor``). Records are written atomically into the shared store
by whichever process runs the cell, exactly as a sequential run writes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from bench.grid import ray_tasks
from bench.grid.executor import Executor, ExecutorError, InProcessExecutor
from bench.grid.pool import LocalPoolExecutor

EXECUTORS = ("inprocess", "pool", "ray")


def default_jobs() -> int:
    """Worker processes for a board: 1 with a CUDA device (one GPU, one process), else the CPU count, at most 4."""
    if torch.cuda.is_available():
        return 1
    return max(1, min(4, os.cpu_count() or 1))


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
        if not ray_tasks.ray_available():
            raise ExecutorError("--address: a Ray cluster needs ray, which is not installed (pip install "
                                "'ray[default]'), and --executor ray")
        raise ExecutorError(f"--address {address}: a cluster address is for --executor ray, not "
                            f"{name or 'the default local pool'}")
    if name == "ray":
        return ray_tasks.RayExecutor(address=address, jobs=jobs, plugins=plugins)
    if name == "inprocess":
        return InProcessExecutor(plugins)
    jobs = jobs or default_jobs()
    return InProcessExecutor(plugins) if jobs == 1 else LocalPoolExecutor(jobs, plugins=plugins)
