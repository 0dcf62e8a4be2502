"""``ubench perf --only calibration``: scoring passes per calibration probe, and one probe pass against one full
evaluation of the same model."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass

from bench.data.tasks import load_task
from bench.models.tiny import get_model, get_tokenizer
from bench.run.calibrate import AnswerScorer
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.runtime.store import Store
from bench.specs.tiers import tier


@dataclass
class CalibrationReport:
    method: str
    probe_calls: int
    scoring_passes: int
    alpha: float
    pass_ms: float
    full_eval_ms: float
    control_seconds: float

    @property
    def ratio(self) -> float:
        return self.scoring_passes / self.probe_calls

    def text(self) -> str:
        return (f"calibration by model mixing, method {self.method} (alpha* = {self.alpha:.4f})\n"
                f"  probes asked (bisection + trade-off grid): {self.probe_calls}\n"
                f"  scoring passes run:                        {self.scoring_passes}\n"
                f"  ratio passes/probes: {self.ratio:.3f} (< 1: the endpoints come from stored records and the grid "
                f"reuses bisection points)\n"
                f"  one probe pass (teacher-forced, forget+retain answers): {self.pass_ms:8.1f} ms; "
                f"full evaluation: {self.full_eval_ms:8.1f} ms\n"
                f"  whole control step (probes + full evaluation at alpha*): {self.control_seconds:.2f} s")


def calibration_cost(task: str, split: str, method_name: str, tier_name: str = "standard") -> CalibrationReport:
    """Run one controlled run into a temporary store and read its calibration accounting; time one probe pass
    against one full evaluation of the same model."""
    data = load_task(task, split)
    with tempfile.TemporaryDirectory() as tmp:
        record = execute(make_run_spec(task, split, method_name, {}, tier(tier_name), seed=0), Store(tmp))
    if not record.ok or record.control is None or record.control.calibration is None:
        raise RuntimeError(f"calibration perf run failed: {record.error.text if record.error else record.status}")
    cal = record.control.calibration
    scorer = AnswerScorer(get_tokenizer(data), data)
    model = get_model(data, "target").load()
    scorer(model)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        scorer(model)
        times.append((time.perf_counter() - start) * 1000)
    return CalibrationReport(method_name, cal.probe_calls, cal.scoring_passes, cal.alpha,
                             statistics.median(times), record.timings["eval_seconds"] * 1000,
                             record.timings["control_seconds"])
