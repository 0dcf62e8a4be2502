"""Run and reference ids carry the code versions that can change a number (issue 16, identity): a method's version
changes the ids of its cells only; a metric's version changes every run and reference id of the tasks that evaluate
it and no other task's; ``ubench store migrate`` re-keys the records stored before the versions entered the ids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.data.splits import FAMILY_SPLITS, SPLITS
from bench.data.tasks import load_task, load_task_config
from bench.grid.cells import cell_record, cell_search_id, plan, trials_per_cell
from bench.metrics.identity import evaluated_metrics
from bench.models.tiny import TaskSplit, model_identity
from bench.registry import EVALUATIONS, METHODS, METRICS
from bench.run.migrate import LEGACY_METRICS, migrate_store
from bench.run.references import EVAL_VERSION, REFERENCE_KINDS, reference_id, reference_key
from bench.run.runspec import make_run_spec
from bench.runtime.records import RunRecord, SearchRecord, Trial, record_from_json
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import content_hash
from bench.specs.run import Budget

from .conftest import MINI

BOARD = Path(__file__).resolve().parent.parent / "leaderboards" / "synthetic.yaml"
BUDGET = Budget(steps=4, lr=5e-4, batch_size=8)
# one forget split of every task (the hub tasks' specs and reference ids need no data)
TASK_SPLITS = {"synthetic": "forget10", MINI: "forget10", "tofu": "forget10", "muse_news": "forget",
               "wmdp": "bio"}


def _run_ids(methods: tuple[str, ...] = ("ga", "npo")) -> dict[tuple[str, str], str]:
    return {(task, method): make_run_spec(task, split, method, {}, BUDGET, 0).run_id
            for task, split in TASK_SPLITS.items() for method in methods}


def _reference_ids() -> dict[tuple[str, str], str]:
    return {(task, kind): reference_id(TaskSplit(load_task_config(task), split), kind)
            for task, split in TASK_SPLITS.items() for kind in REFERENCE_KINDS}


def _bump_metric(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setitem(METRICS._entries, name, dataclasses.replace(METRICS.get(name), version="2"))


def test_a_spec_records_the_method_and_metric_versions() -> None:
    spec = make_run_spec(MINI, "forget10", "npo", {}, BUDGET, 0)
    assert spec.to_dict()["method_version"] == METHODS.get("npo").version == "1"
    assert spec.model["eval_version"] == EVAL_VERSION == 8
    keyed = [name for name in evaluated_metrics(load_task_config(MINI)) if getattr(METRICS.get(name), "in_ids", True)]
    assert spec.model["metric_versions"] == {**{name: "1" for name in keyed}, "lm_eval/*": "1", "relearn/*": "1"}
    assert {"es", "verbmem", "privleak_minkpp", "forget_quality"} <= set(spec.model["metric_versions"])


def test_bumping_an_evaluation_version_changes_every_run_and_reference_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluation that computes numbers on every evaluated model (the relearning attack) is part of every id."""
    board = LeaderboardSpec.load(BOARD)
    before, refs = {c.name: c.spec.run_id for c in plan(board)}, _reference_ids()
    monkeypatch.setitem(EVALUATIONS._entries, "relearn", dataclasses.replace(EVALUATIONS.get("relearn"), version="2"))
    after = {c.name: c.spec.run_id for c in plan(board)}
    assert all(before[name] != after[name] for name in before)
    bumped = _reference_ids()
    assert all(refs[key] != bumped[key] for key in refs)


def test_bumping_a_method_version_changes_the_ids_of_its_cells_only(monkeypatch: pytest.MonkeyPatch) -> None:
    board = LeaderboardSpec.load(BOARD)
    before, refs = {c.name: c.spec.run_id for c in plan(board)}, _reference_ids()
    monkeypatch.setattr(METHODS.get("npo"), "version", "2")
    after = {c.name: c.spec.run_id for c in plan(board)}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {c.name for c in plan(board) if c.method.method == "npo"} and len(changed) == 3
    assert _reference_ids() == refs  # reference ids do not carry the method's version


@pytest.mark.parametrize(("metric", "tasks"), [
    ("verbmem", {"synthetic", MINI, "muse_news"}),  # text splits: not TOFU's or WMDP's
    ("model_utility", {"synthetic", MINI, "tofu"}),  # retain and world facts: not MUSE's or WMDP's
    ("privleak_minkpp", {"synthetic", MINI, "muse_news"}),  # holdout or MIA texts
    ("es", set(TASK_SPLITS)),
])
def test_bumping_a_metric_version_changes_the_ids_of_the_tasks_that_evaluate_it(
        monkeypatch: pytest.MonkeyPatch, metric: str, tasks: set[str]) -> None:
    runs, refs = _run_ids(), _reference_ids()
    _bump_metric(monkeypatch, metric)
    new_runs, new_refs = _run_ids(), _reference_ids()
    assert {task for task, _ in runs if runs[task, _] != new_runs[task, _]} == tasks
    assert all(runs[key] != new_runs[key] for key in runs if key[0] in tasks)  # every run of those tasks
    assert {task for task, _ in refs if refs[task, _] != new_refs[task, _]} == tasks
    assert all(refs[key] != new_refs[key] for key in refs if key[0] in tasks)


def test_a_family_declares_every_split_it_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """``family_splits`` (what the ids count) covers what ``load_task`` scores, or loading fails naming the file."""
    data = load_task(MINI, "forget10")
    assert tuple(data._scored()) == SPLITS and data.split_names() == SPLITS[:6] == FAMILY_SPLITS["synthetic"]

    monkeypatch.setitem(FAMILY_SPLITS, "synthetic", ("forget", "retain", "world_facts", "holdout"))
    with pytest.raises(Exception) as info:
        load_task(MINI, "forget10")
    message = str(info.value)
    assert "mini.yaml: family: synthetic scores split(s) forget_bio, retain_bio" in message and "\n" not in message


def test_a_search_summary_whose_chosen_trial_is_stale_is_not_a_cells_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search-tier cell is represented by its summary's chosen trial only while that trial's run id is the one the
    current code gives its parameters: after a version bump the cell counts as not run (its search is redone)."""
    board_path = tmp_path / "search.yaml"
    board_path.write_text(f"name: search\nversion: '1'\ntasks: [{{task: {MINI}, split: forget10}}]\n"
                          "methods: [{method: npo}]\nseeds: [0]\nbudget: smoke-search\ncolumns: [forget/es]\n"
                          "sort: {by: forget/es}\n")
    board = LeaderboardSpec.load(board_path)
    (cell,) = plan(board, check_data=False)
    store = Store(tmp_path / "results")
    params = {"beta": 0.2}
    run_id = make_run_spec(MINI, "forget10", "npo", params, board.budget, 0, control=board.control).run_id
    store.write(RunRecord(id=run_id, status="ok"))
    trial = Trial(0, params, run_id, "ok", 0.1, 0.5, 0.7)
    store.write_search(SearchRecord(id=cell_search_id(cell, board), task=cell.spec.task, split="forget10",
                                    method="npo", base_params={}, budget=board.budget, seed=0, control=board.control,
                                    n_trials=2, trials=(trial,), selected=0))
    assert trials_per_cell(board) == 2 and cell_record(cell, board, store).id == run_id
    monkeypatch.setattr(METHODS.get("npo"), "version", "2")  # the stored trial was made by version 1
    assert cell_record(cell, board, store) is None


# --- migration --------------------------------------------------------------------------------------------------


def _legacy_run(store: Store, spec_dict: dict, eval_version: int = EVAL_VERSION) -> str:
    """Store a run record the way the code before the versions did (no version fields; old id)."""
    old = {k: v for k, v in spec_dict.items() if k != "method_version"}
    old["model"] = {k: v for k, v in spec_dict["model"].items() if k != "metric_versions"}
    old["model"]["eval_version"] = eval_version
    run_id = content_hash(old)
    record = {"schema_version": 1, "run_id": run_id, "kind": "run", "spec": old, "label": "x", "status": "ok",
              "error": None, "metrics": {"forget/es": {"value": 0.25}}, "timings": {"total_seconds": 1.0}, "env": {}}
    store.write(record_from_json("runs", record, run_id), [{"split": "forget", "id": "a", "es": 0.25}],
                {"geffect.jsonl": '{"step": 1}\n'})
    return run_id


def _legacy_reference(store: Store, task: str, split: str, kind: str) -> tuple[str, str]:
    """(old id, current id) of a reference record stored the way the code before the metric versions did."""
    config = load_task_config(task)
    data = TaskSplit(config, split)
    current = reference_id(data, kind)
    weights = model_identity(data, kind)
    old_id = reference_key(config.digest, split, kind, ("weights", weights), EVAL_VERSION, None)
    record = {"schema_version": 1, "record_id": old_id, "kind": "reference", "status": "ok", "error": None,
              "spec": {"task": config.ref, "split": split, "model": kind, "replicate": 0, "weights": weights,
                       "task_digest": config.digest},
              "metrics": {}, "timings": {}, "env": {}}
    store.write(record_from_json("refs", record, old_id), [{"split": "forget", "id": "a", "es": 1.0}])
    return old_id, current


def test_migrate_rekeys_legacy_records_to_the_ids_of_the_current_code(tmp_path: Path) -> None:
    store = Store(tmp_path / "results")
    spec = make_run_spec(MINI, "forget10", "npo", {"beta": 0.5}, BUDGET, 1)
    old_id = _legacy_run(store, spec.to_dict())
    stale_id = _legacy_run(store, make_run_spec(MINI, "forget10", "ga", {}, BUDGET, 1).to_dict(), eval_version=7)
    ref_old, ref_new = _legacy_reference(store, MINI, "forget10", "oracle")
    trials = (Trial(0, {"beta": 0.5}, old_id, "ok", 0.1, 0.5, 0.7), Trial(1, {"beta": 1.0}, "unknown", "failed",
                                                                          None, None, None))
    store.write_search(SearchRecord(id="s1", task=spec.task, split="forget10", method="npo", base_params={},
                                    budget=BUDGET, seed=1, control=spec.control, n_trials=2, trials=trials,
                                    selected=0))

    done = {(m.kind, m.old_id): m for m in migrate_store(store)}
    assert done["runs", old_id].new_id == spec.run_id and done["runs", old_id].reason == "re-keyed"
    assert done["runs", stale_id].new_id is None and "engine version 7" in done["runs", stale_id].reason
    assert done["refs", ref_old].new_id == ref_new
    new = store.load_run(spec.run_id)
    assert new.spec == spec.to_dict() and new.id == spec.run_id
    old = store.load_run(old_id)  # kept, unchanged
    assert new == dataclasses.replace(old, id=spec.run_id, spec=spec.to_dict())
    old_files, new_files = store.record_files("runs", old_id), store.record_files("runs", spec.run_id)
    assert sorted(new_files) == ["geffect.jsonl", "per_item.jsonl", "result.json", "spec.json"]
    for name in ("per_item.jsonl", "geffect.jsonl"):  # the record's other files, byte for byte
        assert old_files[name] == new_files[name]
    assert json.loads(new_files["spec.json"]) == spec.to_dict()
    ref = store.load_reference(ref_new)
    assert ref.id == ref_new and ref.spec["metric_versions"] == spec.model["metric_versions"]
    rewritten = store.load_search("s1")
    assert [t.run_id for t in rewritten.trials] == [spec.run_id, "unknown"] and rewritten.best.run_id == spec.run_id
    assert done["searches", "s1"].reason == "trial run ids re-keyed"

    again = migrate_store(store)  # nothing left to do: the same ids, nothing rewritten
    assert {m.reason for m in again if m.old_id == old_id} == {"already present under the new id"}
    assert {m.reason for m in again if m.old_id == spec.run_id} == {"left alone: already carries its versions"}


def test_migrated_records_of_a_bumped_version_are_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The migration stamps the versions that made a record (all "1"), not today's: after a bump, a migrated
    record's id is not the current one, so the run is redone rather than its old numbers shown."""
    store = Store(tmp_path / "results")
    spec = make_run_spec(MINI, "forget10", "npo", {}, BUDGET, 0)
    old_id = _legacy_run(store, spec.to_dict())
    _bump_metric(monkeypatch, "es")
    monkeypatch.setattr(METHODS.get("npo"), "version", "2")
    (migration,) = migrate_store(store)
    assert migration.new_id == spec.run_id != make_run_spec(MINI, "forget10", "npo", {}, BUDGET, 0).run_id
    assert migration.old_id == old_id and "es" in LEGACY_METRICS


def test_ubench_store_migrate(tmp_path: Path, capsys) -> None:
    store = Store(tmp_path / "results")
    spec = make_run_spec(MINI, "forget10", "ga", {}, BUDGET, 0)
    old_id = _legacy_run(store, spec.to_dict())
    assert main(["store", "migrate", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"runs/{old_id} -> {spec.run_id}: re-keyed", f"{store.root}: 1 runs re-keyed"]
    assert main(["store", "migrate", "--store", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ubench: error: {tmp_path / 'nothing'}: --store: no result store here (no run or reference record)"
