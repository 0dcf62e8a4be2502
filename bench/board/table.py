"""Leaderboards: a pure function of (LeaderboardSpec, stored records) -> DataFrame.

``build_table`` reads only the store, never a model, so a board can be rebuilt anywhere from its records: per task
the reference rows (target, retain oracle), then one row per method entry with the mean over seeds of every column,
its spread, its hierarchical bootstrap interval (``bench.board.seedstats``) and its rank interval by the sort key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.board.format import REFERENCE_LABELS
from bench.board.seedstats import Ranking, SeedDraws, rank_rows, seed_matrix
from bench.board.seedstats import interval as seed_interval
from bench.grid.cells import BoardRecords, Cell, read_board
from bench.grid.columns import column_direction, is_text, record_boot, record_text, record_value, sort_descending
from bench.metrics.base import IDEALS, distance_to_ideal
from bench.run.references import REFERENCE_KINDS
from bench.runtime.records import Record, RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec


def _aggregate(row: dict, records: Sequence[Record], column: str, draws: SeedDraws) -> np.ndarray | None:
    """Fill ``row``'s ``<column>`` (mean over the seeds' records), ``<column> std`` (over seeds) and
    ``<column> ci_low`` / ``ci_high`` (the hierarchical bootstrap over seeds and items, ``bench.board.seedstats``);
    return the bootstrap draws (None where the column has no value)."""
    pairs = [(r, record_value(r, column)) for r in records]
    pairs = [(r, v) for r, v in pairs if v is not None]
    row[column] = float(np.mean([v for _, v in pairs])) if pairs else np.nan
    row[f"{column} std"] = float(np.std([v for _, v in pairs], ddof=1)) if len(pairs) > 1 else np.nan
    if not pairs or is_text(column):
        row[f"{column} ci_low"] = row[f"{column} ci_high"] = np.nan
        return None
    resampled = draws.resample(seed_matrix([v for _, v in pairs], [record_boot(r, column) for r, _ in pairs]))
    if len(pairs) == 1 and record_boot(pairs[0][0], column) is None:  # one value, no replicates: no interval
        row[f"{column} ci_low"] = row[f"{column} ci_high"] = np.nan
        return resampled
    row[f"{column} ci_low"], row[f"{column} ci_high"] = seed_interval(resampled)
    return resampled


def _text_value(records: list[RunRecord], column: str) -> str | float:
    """The most common value of text column ``column`` over ``records`` (ties: the earliest seed's), NaN if none."""
    values = [v for v in (record_text(r, column) for r in records) if v is not None]
    return Counter(values).most_common(1)[0][0] if values else np.nan


def build_table(board: LeaderboardSpec, store: Store, records: BoardRecords | None = None) -> pd.DataFrame:
    """Rows: reference rows per task, then one row per (task, method entry) with the mean over seeds.

    Columns: ``task``, ``method``, ``reference``, ``seeds`` (ok / planned), ``status``, then each board column as
    ``<column>`` (mean) and ``<column> std`` (over seeds; NaN with one seed). Method rows are sorted by
    ``board.sort`` within each task; failed or missing entries sort last and say why in ``status``. ``records``:
    the board's records already read (``bench.grid.cells.read_board``), else read here.
    """
    records = records or read_board(board, store)
    key = board.sort.by
    keys = list(dict.fromkeys((*board.all_columns, key)))
    rows: list[dict] = []
    geffect: dict[str, dict[str, dict]] = {t.label: {} for t in board.tasks}
    resampled: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for task in board.tasks:
        draws = SeedDraws.make(len(board.seeds))
        task_draws = resampled.setdefault(task.label, {c: {} for c in keys})
        for kind in REFERENCE_KINDS:
            found, expected = records.reference_records(task, kind)
            row = {"task": task.label, "method": REFERENCE_LABELS[kind], "reference": True,
                   "seeds": f"{len(found)}/{expected}" if expected > 1 else "",
                   "status": "ok" if len(found) == expected else "missing"}
            for column in keys:
                task_draws[column][row["method"]] = _aggregate(row, found, column, draws)
            rows.append(row)
        method_rows = []
        for entry in board.methods:
            mine = records.entry(task, entry)
            done = [r for _, r in mine if r is not None]
            ok = [r for r in done if r.ok]
            failed = [r for r in done if not r.ok]
            if failed:
                message = failed[0].error.message if failed[0].error else ""
                status = f"{failed[0].status}: {message}"[:120]
            else:
                status = "ok" if len(ok) == len(mine) else f"missing {len(mine) - len(done)} of {len(mine)}"
            row = {"task": task.label, "method": entry.display, "reference": False,
                   "seeds": f"{len(ok)}/{len(mine)}", "status": status}
            for column in keys:
                task_draws[column][entry.display] = _aggregate(row, ok, column, draws)
                if is_text(column):
                    row[column] = _text_value(ok, column)
            method_rows.append(row)
            facts = _geffect_facts([c for c, _ in mine], ok, records)
            if facts:
                geffect[task.label][entry.display] = facts
        _mark_ranks(method_rows, key, task_draws.get(key, {}))
        method_rows.sort(key=_row_order(board, key))
        rows.extend(method_rows)
    table = pd.DataFrame(rows)
    if key not in board.all_columns:
        table = table.drop(columns=[key, f"{key} std", f"{key} ci_low", f"{key} ci_high"], errors="ignore")
    table.attrs["draws"] = {t: {c: {m: d for m, d in by.items() if d is not None} for c, by in cols.items()}
                            for t, cols in resampled.items()}
    table.attrs["geffect"] = {name: facts for name, facts in geffect.items() if facts}
    return table


def order_text(board: LeaderboardSpec) -> str:
    direction = column_direction(board.sort.by)
    if direction in IDEALS:
        return f"closest to {IDEALS[direction]:g} first"
    return "descending" if sort_descending(board) else "ascending"


def score_of(column: str):
    """Map values of ``column`` so that smaller is better: the value (lower), its negation (higher), or the
    distance to the ideal (zero / half)."""
    direction = column_direction(column)
    if direction in IDEALS:
        return lambda v: np.abs(np.asarray(v, dtype=float) - IDEALS[direction])
    if direction == "higher":
        return lambda v: -np.asarray(v, dtype=float)
    return lambda v: np.asarray(v, dtype=float)


def column_draws(table: pd.DataFrame, task: str, column: str) -> dict[str, np.ndarray]:
    """``{row label: draws}`` of ``column`` on ``task``: the board's shared bootstrap draws (``table.attrs``)."""
    return (table.attrs.get("draws") or {}).get(task, {}).get(column, {})


def ranking(table: pd.DataFrame, task: str, column: str, labels: Sequence[str] | None = None) -> Ranking | None:
    """Significance of ``column``'s order among ``task``'s method rows (or ``labels``), from the board's shared
    bootstrap draws (``table.attrs["draws"]``)."""
    draws = column_draws(table, task, column)
    rows = table[(table["task"] == task) & ~table["reference"].astype(bool)]
    points = {m: float(v) for m, v in zip(rows["method"], rows[column]) if labels is None or m in labels}
    return rank_rows(points, draws, score_of(column))


def _mark_ranks(method_rows: list[dict], key: str, draws: dict[str, np.ndarray]) -> None:
    """``rank`` (the 95% interval of the row's rank by ``key``) and ``tied_best`` (not significantly worse than the
    best row) of each method row."""
    result = rank_rows({r["method"]: r.get(key, np.nan) for r in method_rows}, draws, score_of(key))
    for row in method_rows:
        row["rank"] = result.rank_text(row["method"]) if result else ""
        row["tied_best"] = bool(result and row["method"] in result.tied)


def _row_order(board: LeaderboardSpec, key: str):
    """Sort key of method rows by ``key``: blanks last; a column best at an ideal value (``zero`` / ``half``) by
    distance to it, closest first (``sort.descending`` does not apply); others by value, in ``sort_descending``
    order."""
    direction = column_direction(key)
    if direction in IDEALS:
        return lambda r: (np.isnan(r[key]), 0.0 if np.isnan(r[key]) else distance_to_ideal(direction, r[key]))
    ascending = not sort_descending(board)
    return lambda r: (np.isnan(r[key]), r[key] if ascending else -r[key])


def _geffect_facts(cells: list[Cell], ok: list[RunRecord], records: BoardRecords) -> dict:
    """What the G-effect paragraph needs of one board entry, from its ``ok`` records and their ``geffect.jsonl``
    (means over seeds): the registered method and hyper-parameters, the cumulative G-effect per data set, the
    realised first-order and the measured change of each risk (over the seeds whose records have them), |e_u| at
    the last two recorded steps, the realised change of the forget risk at each recorded step
    (``realised_series``), and NPO's mean weight at the first and last recorded step. Empty without
    G-effect data. Kept in ``table.attrs["geffect"]``, not in the table's columns (nor the CSV)."""
    summaries = [(r, r.geffect) for r in ok if r.geffect is not None and r.geffect.measured]
    if not summaries or not cells:
        return {}
    # the board entry's hyper-parameters (defaults filled in): "+KL" pairs are entries of the board
    facts: dict = {"method": cells[0].spec.method, "hparams": dict(cells[0].spec.hparams), "seeds": len(summaries)}
    cumulative: dict[str, list[float]] = {}
    for _, summary in summaries:
        for name, value in (summary.cumulative or {}).items():
            cumulative.setdefault(name, []).append(float(value))
    facts["cumulative"] = {name: float(np.mean(values)) for name, values in cumulative.items()}
    changed = [s for _, s in summaries if s.measured_change and s.realised_change]
    if changed:  # records written since the step changes are recorded
        for name, attribute in (("realised_change", "realised_change"), ("measured_change", "measured_change")):
            sets = set.intersection(*(set(getattr(s, attribute)) for s in changed))
            facts[name] = {d: float(np.mean([getattr(s, attribute)[d] for s in changed])) for d in sorted(sets)}
        facts["changed_seeds"] = len(changed)
    tails, weight_steps, series = [], [], []
    for record, _ in summaries:
        measured = records.measurements(record)
        stepped = [m for m in measured if m.get("realised_change")]
        if stepped:
            series.append({int(m["step"]): m["realised_change"] for m in stepped})
        if len(measured) >= 2:
            tails.append([(int(m["step"]), abs(float(m["total"].get("forget", np.nan)))) for m in measured[-2:]])
        weighted = [int(m["step"]) for m in measured if "npo_weight" in (m.get("diagnostics") or {})]
        if weighted:
            weight_steps.append([weighted[0], weighted[-1]])
    if tails:
        facts["e_u_tail"] = {"steps": [step for step, _ in tails[0]],
                             "abs": [float(np.mean([t[k][1] for t in tails])) for k in range(2)]}
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    if steps:  # the realised change of the forget risk at each recorded step, mean over the seeds
        facts["realised_series"] = {"steps": steps, "forget": [float(np.mean([s[t].get("forget", np.nan)
                                                                             for s in series])) for t in steps]}
    weights = [s.npo_weight for _, s in summaries if s.npo_weight]
    if weights:
        facts["npo_weight"] = {k: float(np.mean([w[k] for w in weights])) for k in ("first", "last")}
        if weight_steps:
            facts["npo_weight"]["steps"] = weight_steps[0]
    return facts
