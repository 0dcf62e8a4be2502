"""The generated metrics reference is current: regenerate it with `ubench docs` after adding a metric."""

from bench.docs import METRICS_DOC, metrics_reference
from bench.registry import METRICS


def test_metrics_reference_is_current_and_complete() -> None:
    text = metrics_reference()
    for name in METRICS.names():
        assert f"| `{name}` |" in text
    assert METRICS_DOC.read_text() == text, "docs/metrics.md is stale: run `ubench docs`"
