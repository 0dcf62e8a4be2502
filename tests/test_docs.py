"""The generated references are current: regenerate them with `ubench docs` after adding or changing a metric, a
method or a field of the board or entry file (``docs/metrics.md``, the method table of ``README.md`` and
``docs/board-file.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.docs import (
    BOARD_DOC,
    METHODS_BEGIN,
    METHODS_END,
    METRICS_DOC,
    README,
    board_reference,
    metrics_reference,
    plugin_options,
    readme_with_methods,
)
from bench.registry import EVALUATIONS, METHODS, METRICS
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError
from bench.specs.reference import field_table, nested_sections
from bench.specs.schema import init_fields
from bench.submit.entry import SubmissionEntry


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


def test_board_file_reference_is_current_and_complete() -> None:
    """Every field of the board file, of each section it nests and of the entry file has its row, and every option
    the pytest plug-in adds is listed."""
    text = board_reference()
    sections = [LeaderboardSpec, *(cls for cls, _ in nested_sections(LeaderboardSpec)), SubmissionEntry]
    assert {cls.__name__ for cls in sections} >= {"TaskEntry", "MethodEntry", "SortSpec", "Budget", "ControlSpec",
                                                  "AdapterSpec"}
    for cls in sections:
        for name in init_fields(cls):
            assert f"| `{name}` |" in text, f"{cls.__name__}.{name}"
    assert [o.flags[0] for o in plugin_options()] == ["--ubench-results", "--ubench-rerun", "--ubench-plugin"]
    assert all(f"| `{o.flags[0]}` |" in text for o in plugin_options())
    assert BOARD_DOC.read_text() == text, "docs/board-file.md is stale: run `ubench docs`"


@dataclass(frozen=True)
class _Example:
    """An example section. ``documented``: from the docstring; ``both``: the docstring loses."""

    # the comment above,
    # on two lines
    required: int  # and the one after
    documented: tuple[str, ...] = ()
    both: float | None = None  # from the comment
    plain: dict[str, bool] | None = None


def test_a_field_row_reads_the_declaration_and_its_comments() -> None:
    assert field_table(_Example)[2:] == [
        "| `required` | integer | required | the comment above, on two lines and the one after |",
        '| `documented` | list of text | `[]` | from the docstring |',
        "| `both` | number or null | `null` | from the comment |",
        "| `plain` | mapping of text to bool or null | `null` |  |",
    ]
