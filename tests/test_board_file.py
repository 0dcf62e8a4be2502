"""The board file format as a new user meets it (issue 18): YAML 1.2 numbers, errors in file order, an optional
``sort``, paths relative to the file that names them, and errors that name the entry file of a submitted method."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.board.table import order_text
from bench.grid.cells import plan
from bench.grid.columns import check_columns, sort_descending
from bench.specs.board import LeaderboardSpec, load_submitted_entries
from bench.specs.mapping import SpecError, read_yaml
from bench.submit.entry import SubmissionEntry

from .conftest import PLUGINS

TASKS = Path(__file__).resolve().parent.parent / "tasks"

BOARD = """name: b
version: "1"
tasks: [{task: synthetic, split: forget10}]
methods: [{method: ga, params: {lr: 1e-3}}]
budget: smoke
columns: [forget/es, retain/es]
sort: {by: forget/es, descending: false}
"""

ENTRY = """method: ga
version: "1"
label: GA-small
paper: Gradient ascent
authors: [A. Author]
tier: smoke
params: {lr: 1e-3, weight_decay: 1E-2}
"""


@pytest.mark.parametrize(("text", "value"), [("1e-3", 0.001), ("1E5", 100000.0), (".5", 0.5), ("-2e+2", -200.0),
                                             ("1.0e-3", 0.001), ("3", 3), ("2.5", 2.5)])
def test_yaml_1_2_numbers_are_numbers(tmp_path: Path, text: str, value: float) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(f"lr: {text}\n")
    parsed = read_yaml(path)["lr"]
    assert parsed == value and type(parsed) is type(value)


def test_an_unquoted_exponent_is_a_number_in_a_board_and_in_an_entry_file(tmp_path: Path) -> None:
    board = tmp_path / "b.yaml"
    board.write_text(BOARD.replace("budget: smoke", "budget: {steps: 3, lr: 1e-4}"))
    spec = LeaderboardSpec.load(board)
    assert spec.methods[0].params == {"lr": 0.001} and spec.budget.lr == 0.0001
    entries = tmp_path / "b" / "entries"
    entries.mkdir(parents=True)
    (entries / "ga-small.yaml").write_text(ENTRY)
    assert SubmissionEntry.load(entries / "ga-small.yaml").params == {"lr": 0.001, "weight_decay": 0.01}
    [(_, entry)] = load_submitted_entries(entries)
    assert entry.params == {"lr": 0.001, "weight_decay": 0.01}


@pytest.mark.parametrize(("text", "expected"), [
    # a missing field comes after every field given
    ("name: b\nversion: '1'\nbudget: {stpes: 3}\ntasks: []\nmethods: []\n",
     "budget.stpes: unknown field; did you mean 'steps'?"),
    # the first wrong field of the file, not the first of the dataclass
    ("name: b\nversion: '1'\nseeds: [x]\ntasks: [{task: synthetic, split: forget10}]\nmethods: [{method: ga}]\n"
     "columns: 3\n", "seeds[0]: expected an integer, got str 'x'"),
    ("name: b\nversion: '1'\ntasks: [{task: synthetic, split: forget10, requests: 0}, {task: 1}]\n",
     "tasks[0].requests: must be an integer >= 1, got 0"),
])
def test_errors_are_reported_in_file_order(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        LeaderboardSpec.load(path)
    assert str(info.value) == f"{path}: {expected}"


@pytest.mark.parametrize(("columns", "by", "descending", "order"), [
    ("[forget/es, retain/es]", "forget/es", False, "ascending"),  # lower is better on a forget split
    ("[retain/es, forget/es]", "retain/es", True, "descending"),
    ("[privleak_minkpp]", "privleak_minkpp", False, "closest to 0 first"),  # best at an ideal value
])
def test_sort_defaults_to_the_first_column_best_first(tmp_path: Path, columns: str, by: str, descending: bool,
                                                      order: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(BOARD.replace("sort: {by: forget/es, descending: false}\n", "")
                    .replace("columns: [forget/es, retain/es]", f"columns: {columns}"))
    board = LeaderboardSpec.load(path)
    check_columns(board)
    assert (board.sort.by, sort_descending(board), order_text(board)) == (by, descending, order)


@pytest.mark.parametrize(("sort", "descending"), [("{by: forget/es}", False), ("{by: retain/es}", True),
                                                  ("{descending: true}", True)])
def test_a_partial_sort_takes_the_same_defaults(tmp_path: Path, sort: str, descending: bool) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(BOARD.replace("{by: forget/es, descending: false}", sort))
    assert sort_descending(LeaderboardSpec.load(path)) is descending


def test_a_default_sort_column_without_a_direction_asks_for_descending(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(BOARD.replace("sort: {by: forget/es, descending: false}\n", "")
                    .replace("columns: [forget/es, retain/es]", "columns: [geffect/top_group_share]"))
    with pytest.raises(SpecError, match="sort.by: geffect/top_group_share has no direction of better; give sort"):
        check_columns(LeaderboardSpec.load(path))


def test_paths_in_a_board_and_its_entry_files_are_read_from_their_folders(tmp_path: Path, monkeypatch,
                                                                         nan_method: str) -> None:
    """A task YAML file, ``plugins`` and a method's ``plugin`` in a board, and an entry file's ``plugin``, are read
    from the folder of the file that names them, whatever the working directory."""
    project = tmp_path / "project"
    (project / "tasks").mkdir(parents=True)
    shutil.copy(TASKS / "synthetic" / "mini.yaml", project / "tasks" / "mini.yaml")
    board = project / "boards" / "b.yaml"
    (board.parent / "b" / "entries").mkdir(parents=True)
    plugin = PLUGINS / "nan_method.py"
    board.write_text(BOARD.replace("{task: synthetic,", "{task: ../tasks/mini.yaml,")
                     .replace("{method: ga, params: {lr: 1e-3}}",
                              f"{{method: nan_loss, plugin: {os.path.relpath(plugin, board.parent)}}}")
                     + f"plugins: [{os.path.relpath(plugin, board.parent)}]\n")
    (board.parent / "b" / "entries" / "nan2.yaml").write_text(
        f"method: nan_loss\nlabel: NaN2\nplugin: {os.path.relpath(plugin, board.parent / 'b' / 'entries')}\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    spec = LeaderboardSpec.load(Path("..") / "project" / "boards" / "b.yaml")
    assert spec.plugin_files == (str(plugin),)
    cells = plan(spec, check_data=False)
    assert [c.name for c in cells] == ["mini.yaml/forget10/nan_loss/seed0", "mini.yaml/forget10/NaN2/seed0"]
    assert cells[0].spec.task.startswith("synthetic-mini")
