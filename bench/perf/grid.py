"""``ubench perf --only grid``: throughput of a board's grid on local worker processes.

The grid is a slice of the embedded default board (``leaderboards/synthetic.yaml``): its first ``cells`` method
entries on the ``synthetic-mini`` task under the ``smoke`` tier, so one cell takes seconds and the whole benchmark
a few minutes. Each configuration runs the same cells from an empty store (no record to reuse; the reference
records, built once before any timing, are copied in first) on a warm ``LocalPoolExecutor`` (workers started and
the harness imported before the clock starts). Configurations, in order:

- 1 worker x 1 thread (the baseline);
- ``workers`` workers x 1 thread (the grid scale-out: the goal is >= 1.6x the baseline's cells per second);
- 1 worker x all cores (what a user compares with: one process using every core for its matmuls).

The 1-thread configurations' records have identical evidence (``bench.runtime.records.evidence``: timings and env
aside; checked and reported); with several
threads, matmul sums run in another order, so a few numbers move in the 9th digit (the largest relative
difference is reported).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.data.tasks import load_task
from bench.grid.cells import plan
from bench.grid.pool import LocalPoolExecutor
from bench.run.references import get_references
from bench.runtime.paths import REPO_ROOT
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec, TaskEntry
from bench.specs.tiers import tier

GOAL = 1.6


@dataclass
class GridRun:
    workers: int
    threads: int
    cells: int
    seconds: float
    start_seconds: float  # starting the workers (not timed)

    @property
    def label(self) -> str:
        return f"{self.workers} worker{'s' if self.workers > 1 else ''} x {self.threads} thread" + \
            ("s" if self.threads > 1 else "")

    @property
    def cells_per_second(self) -> float:
        return self.cells / self.seconds


@dataclass
class GridReport:
    task: str
    split: str
    tier: str
    methods: list[str]
    runs: list[GridRun] = field(default_factory=list)
    identical: bool = True  # the 1-thread configurations' records are equal (timings and env aside)
    all_cores_difference: float | None = None  # largest relative difference of the all-cores records to those
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after (other work skews the ratios)

    def ratio(self, index: int, base: int = 0) -> float:
        return self.runs[index].cells_per_second / self.runs[base].cells_per_second

    def text(self) -> str:
        base, scaled = self.runs[0], self.runs[1]
        lines = [f"grid throughput: {len(self.methods)} cells ({', '.join(self.methods)}) of the default board on "
                 f"{self.task}/{self.split}, tier {self.tier}, each configuration from an empty store on warm "
                 f"workers, {os.cpu_count()} CPUs (load average {self.load[0]:.1f} before, {self.load[1]:.1f} "
                 f"after)",
                 f"  {base.label} vs {scaled.label}" + (f" (and 1 worker x {self.runs[2].threads} threads)"
                                                          if len(self.runs) > 2 else "")]
        for run in self.runs:
            lines.append(f"  {run.label:24s} {run.seconds:7.1f} s  {run.cells_per_second:.3f} cells/s "
                         f"(worker start {run.start_seconds:.1f} s, not timed)")
        verdict = "ok" if self.ratio(1) >= GOAL else "under goal"
        lines.append(f"  ratio {scaled.label} / {base.label}: {self.ratio(1):.2f}x (goal >= {GOAL}: {verdict})")
        if len(self.runs) > 2:
            lines.append(f"  ratio {scaled.label} / {self.runs[2].label}: {self.ratio(1, 2):.2f}x")
        lines.append(f"  records identical across the 1-thread configurations (timings and env aside): "
                     f"{'yes' if self.identical else 'NO'}")
        if self.all_cores_difference is not None:
            lines.append(f"  {self.runs[2].label}: largest relative difference of a number "
                         f"{self.all_cores_difference:.1e} (float summation order of multi-threaded matmuls)")
        return "\n".join(lines)


def grid_board(cells: int = 8, task: str = "synthetic-mini", split: str = "forget10", tier_name: str = "smoke"):
    """The default board cut to its first ``cells`` method entries on ``task``/``split`` under ``tier_name``."""
    board = LeaderboardSpec.load(REPO_ROOT / "leaderboards" / "synthetic.yaml")
    return dataclasses.replace(board, tasks=(TaskEntry(task, split),), methods=board.methods[:cells],
                               budget=tier(tier_name), seeds=(0,))


def relative_difference(a, b) -> float:
    """The largest relative difference between the numbers of two records of the same shape (inf where anything
    else differs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return float("inf")
        return max((relative_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return float("inf")
        return max((relative_difference(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if a == b or (math.isnan(a) and math.isnan(b)):
            return 0.0
        return abs(a - b) / max(abs(a), abs(b))
    return 0.0 if a == b else float("inf")


def grid_throughput(cells: int = 8, workers: int = 2, all_cores: bool = True, task: str = "synthetic-mini",
                    split: str = "forget10", tier_name: str = "smoke") -> GridReport:
    board = grid_board(cells, task, split, tier_name)
    grid = plan(board)
    data = load_task(task, split)
    configs = [(1, 1), (workers, 1)] + ([(1, os.cpu_count() or 1)] if all_cores else [])
    report = GridReport(task, split, tier_name, [c.method.display for c in grid])
    reference: list[dict] | None = None
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ubench-grid-") as tmp:
        for n, (jobs, threads) in enumerate(configs):
            store = Store(Path(tmp) / f"store{n}")
            get_references(data, store)  # references before the clock: only the cells are timed
            start = time.perf_counter()
            with LocalPoolExecutor(jobs, threads=threads) as pool:
                pool.warm()
                started = time.perf_counter()
                records = pool.run(grid, board, store, reuse=True)
                seconds = time.perf_counter() - started
            report.runs.append(GridRun(jobs, threads, len(grid), seconds, started - start))
            bad = [r.label for r in records if not r.ok]
            if bad:
                raise RuntimeError(f"grid benchmark: cells did not finish ok: {bad}")
            rows = [r.evidence() for r in records]  # what legitimately differs between executors aside
            reference = reference or rows
            if threads == 1:
                report.identical &= rows == reference
            else:
                report.all_cores_difference = relative_difference(rows, reference)
    report.load = (load_before, os.getloadavg()[0])
    return report
