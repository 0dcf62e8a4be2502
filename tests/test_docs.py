"""The generated references are current: regenerate them with `ubench docs` after adding or changing a metric or
a method (``docs/metrics.md`` and the method table of ``README.md``)."""

from pathlib import Path

import pytest

from bench.docs import METHODS_BEGIN, METHODS_END, METRICS_DOC, README, metrics_reference, readme_with_methods
from bench.registry import EVALUATIONS, METHODS, METRICS
from bench.specs.mapping import SpecError


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


def test_readme_method_table_is_current_and_complete() -> None:
    committed = README.read_text()
    assert readme_with_methods(committed) == committed, "README.md's method table is stale: run `ubench docs`"
    table = committed[committed.index(METHODS_BEGIN):committed.index(METHODS_END)]
    for name in METHODS.names():
        cls = METHODS.get(name)
        if cls.__module__.startswith("bench.methods."):
            assert f"| `{name}` |" in table and f"| {cls.version} |" in table


def test_the_method_table_follows_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bumped version or a new paper shows up in the regenerated table, and only inside the markers."""
    committed = README.read_text()
    monkeypatch.setattr(METHODS.get("npo"), "version", "7")
    regenerated = readme_with_methods(committed)
    changed = [line for line in regenerated.splitlines() if line not in committed.splitlines()]
    assert len(changed) == 1 and changed[0].startswith("| `npo` |") and changed[0].endswith("| 7 |")


def test_a_readme_without_the_markers_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="^x.md: no method table region"):
        readme_with_methods("# no table here\n", "x.md")
