"""Typed records, structured metric keys and the pure board, on fixture records (``fixture_store``: two cells of
the default board as released, schema 1): no training, seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.grid import cells as grid_cells
from bench.grid.columns import (
    column_description,
    column_direction,
    column_problem,
    key_text,
    known_columns,
    number_format,
    parse_key,
    record_value,
)
from bench.registry import EVALUATIONS
from bench.release.publish import write_tables
from bench.runtime.keys import CALIBRATED, CONTROL, ENGINE, MetricKey
from bench.runtime.records import SCHEMA_VERSION, ReferenceRecord, RunRecord, evidence, migrate
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec

RUNS = {"GA": "1a599dfc50f055c1", "NPO": "076b08bb59713eec"}
REFS = ("33ff4701e1dbedfe", "a324731ee75aae0c")


def test_stored_records_of_schema_1_load_typed_with_one_id(fixture_store) -> None:
    _, store = fixture_store
    for label, run_id in RUNS.items():
        stored = json.loads((store.folder("runs", run_id) / "result.json").read_text())
        assert stored["schema_version"] == 1 and stored["run_id"] == run_id and "id" not in stored
        record = store.load_run(run_id)
        assert isinstance(record, RunRecord) and record.id == run_id and record.ok
        assert record.label.endswith(f"/{label.lower()}/seed0")
        assert record.control.calibration.alpha == stored["control"]["calibration"]["alpha"]
        assert record.metrics["forget/es"].boot == tuple(stored["metrics"]["forget/es"]["boot"])
        assert record.geffect.top_group == stored["geffect"]["top_group"]
        # read back exactly: the typed record's JSON is the stored one, migrated (one id key)
        expected = {k: v for k, v in stored.items() if k != "run_id"}
        assert record.to_dict() == {**expected, "id": run_id, "schema_version": SCHEMA_VERSION}
        assert record.evidence() == evidence(migrate(stored))
    for ref_id in REFS:
        stored = json.loads((store.folder("refs", ref_id) / "result.json").read_text())
        record = store.load_reference(ref_id)
        assert isinstance(record, ReferenceRecord) and record.id == ref_id == stored["record_id"]
        assert record.to_dict() == {**{k: v for k, v in stored.items() if k != "record_id"}, "id": ref_id,
                                    "schema_version": SCHEMA_VERSION}


def test_a_record_written_anew_gets_the_current_schema(fixture_store, tmp_path: Path) -> None:
    _, store = fixture_store
    record = store.load_run(RUNS["NPO"])
    copy = Store(tmp_path / "copy")
    copy.write(record, [{"split": "forget", "id": "x"}], {"geffect.jsonl": "{\"step\": 0}\n"})
    written = json.loads((copy.folder("runs", record.id) / "result.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION and written["id"] == record.id
    assert "run_id" not in written and "record_id" not in written
    assert copy.load_run(record.id) == record
    assert copy.measurements(record.id) == [{"step": 0}] and copy.per_item("runs", record.id)[0]["id"] == "x"


def test_evidence_leaves_out_how_long_and_where_at_any_depth() -> None:
    record = {"schema_version": 2, "id": "r", "metrics": {"forget/es": {"value": 0.5}},
              "timings": {"total_seconds": 3.0},
              "env": {"cuda_peak_memory_gib": 13.6}, "build": {"params": 3, "build_seconds": 78.8}}
    assert evidence(record) == {"schema_version": 2, "id": "r", "metrics": {"forget/es": {"value": 0.5}},
                                "build": {"params": 3}}


def test_a_record_stored_before_a_schema_change_is_the_same_evidence_as_its_rerun(fixture_store) -> None:
    """A release hashes evidence in the current schema: a schema-1 record and the same record written anew (schema
    2) give one evidence, so a fresh run reproduces a release made from migrated records."""
    _, store = fixture_store
    for run_id in RUNS.values():
        stored = json.loads((store.root / "runs" / run_id / "result.json").read_text())
        assert stored["schema_version"] == 1
        assert evidence(stored) == store.load_run(run_id).evidence()


def test_metric_keys_round_trip_their_string_form(fixture_store) -> None:
    """Every column a board may show, and every metric key stored in a record, parses into a structured key and
    prints back as the same string: board files and stored records need no change."""
    board_path, store = fixture_store
    default = LeaderboardSpec.load(Path(__file__).parent.parent / "leaderboards" / "synthetic.yaml")
    columns = [*known_columns(), *default.all_columns, *LeaderboardSpec.load(board_path).all_columns]
    stored = [key for run_id in RUNS.values() for key in store.load_run(run_id).metrics]
    for text in [*columns, *stored, "calibrated/forget/es@quantized4"]:
        assert key_text(parse_key(text)) == text, text
    assert parse_key("calibrated/forget/es") == MetricKey("es", "forget", CALIBRATED)
    assert parse_key("forget_quality") == MetricKey("forget_quality")
    assert parse_key("alpha") == MetricKey("alpha", evaluation=CONTROL)
    assert parse_key("lm_eval/synthetic_world_mc/acc") == MetricKey("acc", "synthetic_world_mc", evaluation="lm_eval")
    assert parse_key("relearn/forget/es_before") == MetricKey("es_before", "forget", evaluation="relearn")
    assert parse_key("geffect/cumulative/forget") == MetricKey("cumulative", "forget", evaluation="geffect")
    assert parse_key("geffect/top_group_share") == MetricKey("top_group_share", evaluation="geffect")
    assert parse_key("forget/es").attack is None and parse_key("forget/es").evaluation == ENGINE
    assert "attack" in column_problem("forget/es@quantized4")


def test_evaluations_are_registered_with_their_directions_and_descriptions() -> None:
    assert {"lm_eval", "relearn", "geffect"} <= set(EVALUATIONS.names())
    assert column_direction("lm_eval/synthetic_world_mc/acc") == "higher"
    assert column_direction("relearn/forget/es") == "lower"
    assert column_direction("geffect/cumulative/forget") == "lower"
    assert column_direction("geffect/cumulative/retain") == "higher"
    assert column_direction("geffect/top_group_share") == "none"
    assert column_direction("privleak_minkpp") == "zero" and column_direction("forget/es") == "lower"
    assert column_description("lm_eval/synthetic_world_mc/acc") == \
        "lm-eval task synthetic_world_mc: acc of the model (real-world utility)"
    assert column_description("relearn/forget/es_before") == \
        "relearning attack: forget es on the held-back forget items before the attack"
    assert column_description("calibrated/forget/es").endswith(
        "; on the forget split; of the calibrated model θ(α*) (reference rows: the raw value)")
    assert (number_format("privleak_minkpp"), number_format("calibrated/privleak_minkpp")) == (".1f", ".1f")
    assert (number_format("geffect/cumulative/forget"), number_format("forget/es")) == (".3g", ".3f")
    assert column_problem("calibrated/lm_eval/synthetic_world_mc/acc") == \
        "lm_eval/synthetic_world_mc/acc has no calibrated form; write lm_eval/synthetic_world_mc/acc"
    assert column_problem("relearn/n_rest") == \
        "unknown column 'relearn/n_rest'; write relearn/forget/es or relearn/forget/prob"


def test_a_reference_reads_its_raw_value_as_calibrated_and_no_run_only_column(fixture_store) -> None:
    _, store = fixture_store
    target = store.load_reference(REFS[0])
    assert record_value(target, "calibrated/forget/es") == record_value(target, "forget/es") is not None
    assert record_value(target, "alpha") is None and record_value(target, "geffect/cumulative/forget") is None
    run = store.load_run(RUNS["GA"])
    assert record_value(run, "alpha") == run.control.calibration.alpha
    assert record_value(run, "geffect/cumulative/forget") == run.geffect.cumulative["forget"]
    assert record_value(run, "forget/es", "ci_low") == run.metrics["forget/es"].ci_low


def test_one_write_plans_once_and_reads_each_record_once(fixture_store, monkeypatch: pytest.MonkeyPatch) -> None:
    board_path, store = fixture_store
    board = LeaderboardSpec.load(board_path)
    plans, loads = [], []
    plan, load = grid_cells.plan, Store.load
    monkeypatch.setattr(grid_cells, "plan", lambda *a, **k: plans.append(1) or plan(*a, **k))
    monkeypatch.setattr(Store, "load", lambda self, kind, i: loads.append((kind, i)) or load(self, kind, i))
    table, paths = write_tables(board, store)
    assert len(plans) == 1
    assert sorted(loads) == sorted({*loads}) and len(loads) == len(RUNS) + len(REFS)
    assert list(table["status"]) == ["ok"] * 4 and paths["html"].is_file()


REBUILD = """
import json, sys
sys.modules["datasets"] = None  # unimportable: a rebuild must not need it
from bench.release.publish import write_tables
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
table, paths = write_tables(LeaderboardSpec.load(sys.argv[1]), Store(sys.argv[2]))
print(json.dumps({"status": list(table["status"]), "datasets": sys.modules.get("datasets") is not None,
                  "torch": "torch" in sys.modules}))
"""


def test_board_rebuilds_offline_without_datasets_or_a_model_cache(fixture_store, tmp_path: Path) -> None:
    """The hub unreachable, ``datasets`` unimportable and an empty model / dataset cache: the board is rebuilt
    from the spec and the stored records alone, with its reference rows found (their ids come from the task config
    and the shipped checkpoints' hashes). torch is still imported on this path: the store, the run specs (method
    defaults) and the metric declarations import it (see the report of issue 16)."""
    board_path, store = fixture_store
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "UBENCH_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", REBUILD, str(board_path), str(store.root)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == ["ok"] * 4 and not result["datasets"]
    assert list(cache.iterdir()) == []  # nothing built or downloaded
    csv = pd.read_csv(board_path.parent / "fixture" / "board.csv")
    assert list(csv["method"][:2]) == ["target (before unlearning)", "retain oracle"]
    assert sorted(csv["method"][2:]) == ["GA", "NPO"]
