"""The generated metrics reference is current: regenerate it with `ubench docs` after adding a metric."""

from bench.docs import METRICS_DOC, metrics_reference
from bench.registry import EVALUATIONS, METRICS


def test_metrics_reference_is_current_and_complete() -> None:
    text = metrics_reference()
    for name in METRICS.names():
        assert f"| `{name}` |" in text
    assert METRICS_DOC.read_text() == text, "docs/metrics.md is stale: run `ubench docs`"


def test_evaluations_are_documented_from_their_declarations() -> None:
    """Every registered evaluation (lm-eval, relearning, G-effect) has its row, written from its declaration: the
    same one the board's tooltips and directions come from."""
    text = metrics_reference()
    for name in EVALUATIONS.names():
        spec = EVALUATIONS.get(name)
        assert f"| {spec.keys} | {spec.better} |" in text
