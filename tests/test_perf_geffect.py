"""``ubench perf --only geffect`` runs end to end on the mini task and reports every part it times, the step changes
recorded after a measured update included (no timing is asserted: the ratios are printed, not tested)."""

from __future__ import annotations

from bench.perf.geffect import geffect_cost

from .conftest import MINI


def test_geffect_benchmark_reports_measurement_instances_and_step_changes(mini_target) -> None:
    report = geffect_cost(MINI, "forget10", "ga", batch_size=4, repeats=1, steps=1)
    assert len(report.measure_ms) == len(report.step_ms) == len(report.step_change_ms) == 1
    assert all(t > 0 for t in (*report.measure_ms, *report.step_change_ms, *report.instance_fast_ms))
    text = report.text()
    for part in ("(a) one measurement", "(b) per-instance PG-effect", "(c) extra memory",
                 "(d) step changes after a measured update", "ratio step changes/step"):
        assert part in text
    assert report.instance_max_rel_diff < 1e-3  # the jvp and per-item backward values agree
