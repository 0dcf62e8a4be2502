"""End-to-end micro runs on the mini task: records, determinism, failures; reuse and the board builder on the
committed fixture records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.run.execute
from bench.board.table import build_table
from bench.grid.cells import plan
from bench.models.tiny import get_model
from bench.release.publish import write_tables
from bench.run.execute import execute
from bench.run.references import get_references
from bench.run.runspec import make_run_spec
from bench.runtime.records import SCHEMA_VERSION
from bench.runtime.store import CorruptRecordWarning, Store
from bench.specs.board import LeaderboardSpec
from bench.specs.run import Budget

from .conftest import MINI, fixture_board

BUDGET = Budget(steps=4, lr=5e-4, batch_size=8)


def test_target_memorises_its_training_answers(mini_data, store) -> None:
    refs = get_references(mini_data, store)
    info = get_model(mini_data, "target").info
    assert info["exact_answer"]["forget"] >= 0.95 and info["exact_answer"]["retain"] >= 0.95
    target, oracle = refs.records["target"].metrics, refs.records["oracle"].metrics
    assert target["forget/es"].value > 0.95
    assert oracle["forget/es"].value < 0.6  # never saw the forget people
    assert oracle["forget_quality"].value == 1.0
    assert target["forget_quality"].value < 0.05


@pytest.mark.parametrize("method", ["gd"])  # ga's and npo's records: test_executors.py, test_faults.py
def test_micro_run_writes_a_complete_record(method: str, store) -> None:
    spec = make_run_spec(MINI, "forget10", method, {}, BUDGET, seed=0)
    record = execute(spec, store)
    assert record.ok, record.error
    folder = store.folder("runs", spec.run_id)
    stored = json.loads((folder / "result.json").read_text())
    assert stored["schema_version"] == SCHEMA_VERSION and stored["id"] == spec.run_id
    assert stored == record.to_dict()
    assert stored["spec"]["method"] == method and stored["train"]["steps"] == 4
    assert {"forget/es", "forget/prob", "forget_quality", "model_utility", "retain/rouge_l"} <= set(stored["metrics"])
    assert stored["env"]["torch"] and "git_commit" in stored["env"]
    rows = [json.loads(line) for line in (folder / "per_item.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"forget", "retain", "world_facts", "holdout", "forget_bio", "retain_bio"}
    assert stored["metrics"]["forget/es"]["n"] == sum(r["split"] == "forget" for r in rows)


def test_rerun_reuses_the_stored_record(mini_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_run_spec(MINI, "forget10", "ga", {}, BUDGET, seed=0)  # a fixture cell (conftest.fixture_boards)
    store = Store(mini_results)
    stored = store.load_run(spec.run_id)
    assert stored is not None and stored.ok
    monkeypatch.setattr(bench.run.execute, "unlearn", lambda *a, **k: pytest.fail("a stored run was trained again"))
    assert execute(spec, store) == stored
    with pytest.raises(pytest.fail.Exception, match="a stored run was trained again"):
        execute(spec, store, reuse=False)


def test_other_seed_other_record(mini_results: Path) -> None:
    """The seed reaches the run: npo with seed 1 (its own replicate of target and oracle, its own batch order)
    trains otherwise than the stored seed-0 fixture record of the same spec. That the same seed gives the same
    bytes is ``test_faults.py::test_one_spec_alone_and_by_two_concurrent_processes_gives_byte_identical_records``."""
    store = Store(mini_results)
    stored = store.load_run(make_run_spec(MINI, "forget10", "npo", {}, BUDGET, seed=0).run_id)
    other = execute(make_run_spec(MINI, "forget10", "npo", {}, BUDGET, seed=1), store)
    assert stored.ok and other.ok and other.spec["seed"] == 1
    assert other.spec["model"]["weights"] != stored.spec["model"]["weights"]
    assert other.train.losses != stored.train.losses
    assert other.metrics["forget/prob"].value != stored.metrics["forget/prob"].value


def test_run_id_changes_with_anything_that_changes_numbers() -> None:
    base = make_run_spec(MINI, "forget10", "npo", {}, BUDGET, seed=0)
    assert base.hparams == {"beta": 0.1, "retain_loss": "none", "retain_weight": 1.0}  # defaults pinned
    assert base.run_id == make_run_spec(MINI, "forget10", "npo", {"beta": 0.1}, BUDGET, seed=0).run_id
    assert base.run_id != make_run_spec(MINI, "forget10", "npo", {"beta": 0.2}, BUDGET, seed=0).run_id
    assert base.run_id != make_run_spec(MINI, "forget10", "npo", {}, Budget(steps=5, lr=5e-4, batch_size=8), 0).run_id


def test_nan_loss_is_recorded_as_failed_with_its_step(store, nan_method: str) -> None:
    spec = make_run_spec(MINI, "forget10", nan_method, {}, BUDGET, seed=0)
    record = execute(spec, store)
    assert record.status == "failed"
    assert record.error.type == "NonFiniteLoss" and record.error.step == 1
    assert store.load_run(spec.run_id).status == "failed"


def test_board_has_reference_rows_and_sorted_methods(tmp_path: Path, mini_results: Path) -> None:
    board = LeaderboardSpec.load(fixture_board(tmp_path, sort="{by: forget/prob, descending: false}"))
    store = Store(mini_results)
    table, paths = write_tables(board, store)
    assert list(table["method"][:2]) == ["target (before unlearning)", "retain oracle"]
    methods = table[~table["reference"]]
    assert set(methods["method"]) == {"GA", "GA+KL", "npo"} and set(methods["status"]) == {"ok"}
    prob = list(methods["forget/prob"])
    assert prob == sorted(prob) and len(set(prob)) == 3  # distinct values: the order is a real test
    markdown = paths["markdown"].read_text()
    assert "forget/prob ↓" in markdown and "forget_quality ↑" in markdown and "*retain oracle*" in markdown
    assert paths["csv"].read_text().splitlines()[0].startswith("task,method")
    # the builder is a pure function of spec and records
    assert build_table(board, store).equals(table)


def test_corrupt_record_is_named_and_skipped(tmp_path: Path, mini_results: Path) -> None:
    board = LeaderboardSpec.load(fixture_board(tmp_path, methods="[{method: ga}, {method: npo}]"))
    store = Store(mini_results)
    cells = plan(board)
    broken = store.folder("runs", cells[0].spec.run_id) / "result.json"
    broken.write_text(broken.read_text()[:40])
    with pytest.warns(CorruptRecordWarning, match=str(broken)):
        table = build_table(board, store)
    row = table[table["method"] == "ga"].iloc[0]
    assert row["status"].startswith("missing")
    assert table[table["method"] == "npo"].iloc[0]["status"] == "ok"
