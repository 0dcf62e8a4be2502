"""Reading a stored record as a board does: the value, bootstrap draws or text of a column, and a run's G-effect
measurements (``geffect.jsonl``)."""

from __future__ import annotations

import json
import warnings

from bench.grid.columns import CALIBRATED, CONTROL_COLUMNS, GEFFECT, GEFFECT_COLUMNS, TEXT_COLUMNS
from bench.runtime.store import CorruptRecordWarning, Store


def record_value(record: dict | None, column: str, field: str = "value") -> float | None:
    """The value of ``column`` in an ``ok`` record, or None when the record lacks it. ``field`` = ``ci_low`` /
    ``ci_high`` reads a metric's bootstrap interval instead (metric columns only; None for the others).

    A reference record (``kind: reference``) has only raw metrics: its ``calibrated/`` value is the raw value and
    it has no ``alpha`` or ``tradeoff_auc``.
    """
    if not record or record.get("status") != "ok":
        return None
    reference = record.get("kind") == "reference"
    control = record.get("control") or {}
    if field != "value" and (column in GEFFECT_COLUMNS or column in CONTROL_COLUMNS):
        return None
    if column in GEFFECT_COLUMNS:
        if reference or column in TEXT_COLUMNS:
            return None
        summary = record.get("geffect") or {}
        if column == f"{GEFFECT}top_group_share":
            value = summary.get("top_group_share")
        else:
            value = (summary.get("cumulative") or {}).get(column.rpartition("/")[2])
    elif column in CONTROL_COLUMNS:
        if reference:
            return None
        section, field = ("calibration", "alpha") if column == "alpha" else ("tradeoff", "auc")
        value = (control.get(section) or {}).get(field)
    else:
        value = _metric_entry(record, column).get(field)
    return None if value is None else float(value)


def _metric_entry(record: dict, column: str) -> dict:
    """The stored metric dict of metric column ``column`` (raw, or ``calibrated/``: on a reference its raw one)."""
    raw = column.removeprefix(CALIBRATED)
    reference = record.get("kind") == "reference"
    source = record.get("metrics") if reference or raw == column else (record.get("control") or {}).get(
        "calibrated_metrics")
    return (source or {}).get(raw) or {}


def record_boot(record: dict | None, column: str) -> list | None:
    """The metric's values on the evaluation's shared item draws (``boot``), or None (no replicates stored)."""
    if not record or record.get("status") != "ok" or column in GEFFECT_COLUMNS or column in CONTROL_COLUMNS:
        return None
    return _metric_entry(record, column).get("boot")


def record_text(record: dict | None, column: str) -> str | None:
    """The value of text column ``column`` (``geffect/top_group``) in an ``ok`` run record, or None."""
    if not record or record.get("status") != "ok" or record.get("kind") == "reference" or column not in TEXT_COLUMNS:
        return None
    value = (record.get("geffect") or {}).get(column.rpartition("/")[2])
    return None if value is None else str(value)


def load_measurements(store: Store, record: dict) -> list[dict]:
    """The G-effect measurements (``geffect.jsonl``, one per recorded step, in step order) of a run record; empty
    when the run folder has none. A malformed file is named in a warning and treated as empty."""
    run_id = record.get("run_id")
    if not run_id:
        return []
    path = store.folder("runs", run_id) / "geffect.jsonl"
    if not path.is_file():
        return []
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        warnings.warn(f"{path}: corrupt G-effect file skipped ({exc})", CorruptRecordWarning, stacklevel=2)
        return []
    return sorted((r for r in rows if isinstance(r, dict) and "step" in r), key=lambda r: r["step"])
