"""``ubench perf --only cells``: where a board's wall time went, read from its stored records.

Every run record keeps the wall seconds of its phases (``timings``: ``train``, ``geffect`` (inside train),
``eval`` (the one-pass evaluation of the unlearned model), ``lm_eval``, ``relearn`` (inside eval), ``control``
(calibration by model mixing), ``references`` (loading the target and oracle records) and ``total``). This report
sums them over the board's cells: the mean seconds per cell of each phase, its share of the cells' total, and the
slowest method entries. Nothing runs: it reads the records the last ``ubench run`` wrote, so it describes the
machine and worker count that run used (the record's env says which).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from bench.grid.cells import cell_record, plan
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec

PHASES = ("train", "geffect", "eval", "lm_eval", "relearn", "control", "references", "total")
NESTED = {"geffect": "train"}  # phases timed inside another phase


@dataclass
class CellsReport:
    board: str
    cells: int
    timed: int  # cells whose record has timings
    phase_seconds: dict[str, float] = field(default_factory=dict)  # summed over the timed cells
    method_seconds: dict[str, float] = field(default_factory=dict)  # total seconds per method entry label

    def text(self) -> str:
        total = self.phase_seconds.get("total", 0.0)
        lines = [f"cells: {self.board}: {self.timed}/{self.cells} cells with timings, "
                 f"{total:.1f} s of cell time in all (the wall time divides it by the worker count)"]
        for phase in PHASES:
            seconds = self.phase_seconds.get(phase)
            if seconds is None:
                continue
            inside = f" (inside {NESTED[phase]})" if phase in NESTED else ""
            share = f"{seconds / total:6.1%}" if total else "     -"
            lines.append(f"  {phase:<10} {seconds / max(self.timed, 1):7.2f} s/cell  {share}{inside}")
        slowest = sorted(self.method_seconds.items(), key=lambda kv: -kv[1])[:5]
        lines.append("  slowest entries (s over seeds): " + ", ".join(f"{k} {v:.1f}" for k, v in slowest))
        return "\n".join(lines)


def cell_breakdown(board: LeaderboardSpec, store: Store) -> CellsReport:
    """Sum each phase's ``timings[<phase>_seconds]`` over the records that represent the board's cells."""
    cells = plan(board)
    phases: dict[str, float] = defaultdict(float)
    methods: dict[str, float] = defaultdict(float)
    timed = 0
    for cell in cells:
        record = cell_record(cell, board, store)
        timings = record.timings if record is not None else {}
        if not timings:
            continue
        timed += 1
        for phase in PHASES:
            if f"{phase}_seconds" in timings:
                phases[phase] += float(timings[f"{phase}_seconds"])
        methods[f"{cell.task.label}/{cell.method.display}"] += float(timings.get("total_seconds", 0.0))
    return CellsReport(board.name, len(cells), timed, dict(phases), dict(methods))
