"""Leaderboards: a pure function of (LeaderboardSpec, stored records) -> DataFrame -> markdown and CSV.

``plan`` turns a board into validated ``RunSpec``s (every name and hyper-parameter checked before anything runs);
``build_table`` reads only the store, never a model, so a board can be rebuilt anywhere from its records.

Column keys (see ``column_direction``):

- ``split/metric`` or ``metric``: the raw endpoint, from a record's ``metrics`` (e.g. ``forget/es``,
  ``forget_quality``);
- ``calibrated/<raw key>``: the same metric of the calibrated model theta(alpha*) (arXiv 2406.09179), from
  ``control.calibrated_metrics``; on reference rows (target, retain oracle) it equals the raw value;
- ``alpha``: the calibrated mixing weight alpha* (``control.calibration.alpha``), higher is better (less mixing
  with the target was needed; 1 means the raw endpoint already keeps the utility);
- ``tradeoff_auc``: the area under the forget-efficacy vs utility frontier (``control.tradeoff.auc``), higher is
  better. ``alpha`` and ``tradeoff_auc`` are blank on reference rows;
- ``geffect/cumulative/<set>`` (set: forget, retain, holdout, world_facts): the cumulative G-effect (arXiv
  2502.19301) sum of lr * e(D) * steps over the recorded steps (``geffect.cumulative``); forget: lower is better
  (more negative: the forget risk rose more), the others higher is better;
- ``geffect/top_group_share``: the share of |cumulative forget G-effect| in the most-affected block group, no
  direction of better (marked ``·``; as the sort key it needs an explicit ``descending``);
- ``geffect/top_group``: that group's name (text: the most common value over seeds; never a sort key).
  The G-effect columns are blank on reference rows.

A metric best at an ideal value (direction ``zero`` or ``half``: PrivLeak, membership AUCs) is marked ``→0`` /
``→½``; as the sort key it orders rows by distance to that value, closest first.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.control.controller import UTILITY_METRIC
from bench.data.tasks import load_task
from bench.geffect.callback import DATA_SETS as GEFFECT_SETS
from bench.metrics.base import IDEALS, ItemMetric, distance_to_ideal
from bench.registry import METHODS, METRICS
from bench.runner import REFERENCE_KINDS, make_run_spec, reference_id
from bench.seedstats import Ranking, SeedDraws, rank_rows, seed_matrix, significantly
from bench.seedstats import interval as seed_interval
from bench.spec import LeaderboardSpec, MethodEntry, RunSpec, SpecError, TaskEntry, read_yaml
from bench.store import Store, atomic_write_text

REFERENCE_LABELS = {"target": "target (before unlearning)", "oracle": "retain oracle"}
ARROWS = {"higher": "↑", "lower": "↓", "zero": "→0", "half": "→½", "none": "·"}
CALIBRATED = "calibrated/"
SPLITS = ("forget", "retain", "world_facts", "holdout", "forget_bio", "retain_bio", "real_authors", "mia_forget",
          "mia_holdout")
# splits where less knowledge is better (forget_direction)
FORGET_SPLITS = frozenset({"forget", "forget_bio", "mia_forget"})
# Record metrics produced outside the metric registry, by key prefix, with their direction of better: lm-eval
# utility (``lm_eval/<task>/<metric>``, e.g. accuracy) and the relearning attack (``relearn/forget/<metric>``: the
# forget knowledge recovered after fine-tuning on a slice; ``_before`` and ``n_`` keys are bookkeeping). They have
# no calibrated form.
EXTERNAL_PREFIXES = {"lm_eval/": "higher", "relearn/": "lower"}
# Columns read from a run's control section that have no reference-row value, with their direction of better.
CONTROL_COLUMNS = {"alpha": "higher", "tradeoff_auc": "higher"}
UTILITY_NAMES = {"retain_es": "retain ES", "retain_rouge": "retain ROUGE-L", "model_utility": "model utility"}
# G-effect columns (arXiv 2502.19301), read from a run's ``geffect`` summary, with their direction of better
# ("none": no direction); blank on reference rows. ``geffect/top_group`` is text.
GEFFECT = "geffect/"
GEFFECT_COLUMNS = {**{f"{GEFFECT}cumulative/{s}": "lower" if s == "forget" else "higher" for s in GEFFECT_SETS},
                   f"{GEFFECT}top_group_share": "none", f"{GEFFECT}top_group": "none"}
TEXT_COLUMNS = frozenset({f"{GEFFECT}top_group"})
# Columns that are blank on reference rows.
RUN_ONLY_COLUMNS = frozenset({*CONTROL_COLUMNS, *GEFFECT_COLUMNS})


@dataclass(frozen=True)
class Cell:
    """One leaderboard entry: a (task, method, seed) with its RunSpec."""

    task: TaskEntry
    method: MethodEntry
    seed: int
    spec: RunSpec

    @property
    def name(self) -> str:
        """``task/split/method/seedN``: pytest splits node ids on ``::``, so a name must not contain it."""
        return f"{self.task.label}/{self.method.display}/seed{self.seed}"


def plan(board: LeaderboardSpec) -> list[Cell]:
    """Every cell of ``board``; raises SpecError/RegistryError naming the file and entry on any bad input."""
    _check_columns(board)
    cells = []
    for t_index, task in enumerate(board.tasks):
        for m_index, entry in enumerate(board.methods):
            if entry.plugin:
                METHODS.load_plugin_file(entry.plugin)
            for seed in board.seeds:
                try:
                    spec = make_run_spec(task.task, task.split, entry.method, entry.params, board.budget, seed,
                                         board.path, f"methods[{m_index}]", control=board.control,
                                         requests=task.requests, adapter=board.adapter, model=task.model)
                except SpecError as exc:
                    if "unknown task" in str(exc):
                        raise SpecError(f"{board.path}: tasks[{t_index}].task: {exc}") from exc
                    raise
                cells.append(Cell(task, entry, seed, spec))
    labels = [c.method.display for c in cells]
    dupes = {label for label in labels if labels.count(label) > len(board.seeds) * len(board.tasks)}
    if dupes:
        raise SpecError(f"{board.path}: methods: entries share a label {sorted(dupes)}; give each a distinct 'label'")
    return cells


def trials_per_cell(board: LeaderboardSpec) -> int:
    """Hyper-parameter trials each cell gets: the tier's allowance (1: the entry's own parameters only)."""
    from bench.control.tiers import tier_trials

    return tier_trials(board.budget.tier) if board.budget.tier else 1


def _search_args(cell: Cell, board: LeaderboardSpec) -> dict:
    return {"task": cell.task.task, "split": cell.task.split, "method": cell.method.method,
            "base_params": cell.method.params, "budget": board.budget, "seed": cell.seed, "control": board.control,
            "n_trials": trials_per_cell(board)}


def run_cell(cell: Cell, board: LeaderboardSpec, store: Store, reuse: bool = True) -> dict:
    """Run one board cell and return the record that represents it: the run itself, or, when the tier allows
    several trials, the selected trial of a calibrated search (arXiv 2406.09179) with ``search`` attached (the
    first trial's record when none succeeded)."""
    from bench.runner import execute

    if trials_per_cell(board) == 1:
        return execute(cell.spec, store, reuse=reuse)
    from bench.control.search import search

    result = search(**_search_args(cell, board), store=store)
    chosen = result.best or result.trials[0]
    record = dict(store.load("runs", chosen.run_id) or {})
    record["search"] = {"search_id": result.search_id, "selected": result.selected, "n_trials": result.n_trials}
    return record


def cell_record(cell: Cell, board: LeaderboardSpec, store: Store) -> dict | None:
    """The stored record that represents ``cell`` (see ``run_cell``), or None if it has not run."""
    if trials_per_cell(board) == 1:
        return store.load("runs", cell.spec.run_id)
    import json

    from bench.control.search import search_id_of

    args = _search_args(cell, board)
    search_id = search_id_of(cell.spec.task, args["split"], args["method"], args["base_params"], args["budget"],
                             args["seed"], args["control"], args["n_trials"])
    path = store.root / "searches" / f"{search_id}.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    trials = summary.get("trials") or []
    index = summary.get("selected")
    chosen = trials[index] if index is not None else (trials[0] if trials else None)
    return store.load("runs", chosen["run_id"]) if chosen else None


def ok_cell_records(board: LeaderboardSpec, store: Store):
    """Per task and method entry of ``board`` (in board order, with the entry's index): the ``ok`` records that
    represent its cells (``cell_record``), each with its seed. The plots read their series from this."""
    cells = plan(board)
    for task in board.tasks:
        for index, entry in enumerate(board.methods):
            records = ((c.seed, cell_record(c, board, store)) for c in cells if c.task == task and c.method == entry)
            yield task, index, entry, [(seed, r) for seed, r in records if r and r.get("status") == "ok"]


def column_direction(column: str) -> str:
    """Direction of better of a column key (see the module docstring): a metric's from its declaration, and the
    same for its ``calibrated/`` form; ``alpha`` and ``tradeoff_auc`` are higher-is-better; the G-effect columns
    have theirs in ``GEFFECT_COLUMNS`` (``none`` for the direction-less ones)."""
    if column in CONTROL_COLUMNS:
        return CONTROL_COLUMNS[column]
    if column in GEFFECT_COLUMNS:
        return GEFFECT_COLUMNS[column]
    for prefix, direction in EXTERNAL_PREFIXES.items():
        if column.startswith(prefix):
            return direction
    split, _, name = column.removeprefix(CALIBRATED).rpartition("/")
    metric = METRICS.get(name)
    if isinstance(metric, ItemMetric):
        return metric.forget_direction if split in FORGET_SPLITS else metric.direction
    return metric.direction


def known_columns() -> list[str]:
    """Every valid column key: raw metric keys, their ``calibrated/`` forms, ``alpha`` and ``tradeoff_auc``, then
    the G-effect columns."""
    raw: list[str] = []
    for name in METRICS.names():
        if isinstance(METRICS.get(name), ItemMetric):
            from bench.metrics.evaluate import SPLIT_ROLES

            roles = METRICS.get(name).roles
            raw.extend(f"{split}/{name}" for split in SPLITS if SPLIT_ROLES[split] in roles)
        else:
            raw.append(name)
    return [*raw, *(CALIBRATED + key for key in raw), *CONTROL_COLUMNS, *GEFFECT_COLUMNS]


def _column_problem(column: str) -> str | None:
    """Why ``column`` is not a valid column key (one line, with a did-you-mean), or None when it is valid."""
    if column in CONTROL_COLUMNS or column in GEFFECT_COLUMNS:
        return None
    raw = column.removeprefix(CALIBRATED)
    calibrated = raw != column
    external = next((p for p in EXTERNAL_PREFIXES if raw.startswith(p)), None)
    if external:
        if calibrated:
            return f"{raw} has no calibrated form; write {raw}"
        if len(raw.removeprefix(external).split("/")) != 2:
            return (f"unknown column {column!r}; write {external}<task>/<metric>" if external == "lm_eval/" else
                    f"unknown column {column!r}; write relearn/forget/es or relearn/forget/prob")
        return None
    if calibrated and (raw in CONTROL_COLUMNS or raw in GEFFECT_COLUMNS):
        return f"{raw} has no calibrated form; write {raw}"
    if raw.startswith(GEFFECT):
        close = difflib.get_close_matches(raw, list(GEFFECT_COLUMNS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (G-effect columns: {', '.join(GEFFECT_COLUMNS)})"
        return f"unknown column {column!r}{hint}"
    split, _, name = raw.rpartition("/")
    if name not in METRICS:
        close = difflib.get_close_matches(column, known_columns(), n=1, cutoff=0.6)
        if calibrated or (close and close[0] in CONTROL_COLUMNS):
            hint = (f"; did you mean {close[0]!r}?" if close else
                    f" (a column is split/metric, metric, {CALIBRATED}<column>, alpha or tradeoff_auc; metrics: "
                    f"{', '.join(METRICS.names())})")
            return f"unknown column {column!r}{hint}"
        try:
            METRICS.get(name)
        except LookupError as exc:
            return str(exc)
    prefix = CALIBRATED if calibrated else ""
    is_item = isinstance(METRICS.get(name), ItemMetric)
    if is_item and split not in SPLITS:
        return f"{name} is per split; write {', '.join(f'{prefix}{s}/{name}' for s in SPLITS[:-1])} or " \
               f"{prefix}{SPLITS[-1]}/{name}"
    if not is_item and split:
        return f"{name} is not per split; write {prefix}{name}"
    if is_item:
        from bench.metrics.evaluate import SPLIT_ROLES

        metric = METRICS.get(name)
        if SPLIT_ROLES[split] not in metric.roles:
            valid = [s for s in SPLITS if SPLIT_ROLES[s] in metric.roles]
            return f"{name} is not defined on {split}; write one of {', '.join(prefix + s + '/' + name for s in valid)}"
    return None


def _explicit_descending(board: LeaderboardSpec) -> bool:
    """Whether the board's file gives ``sort.descending`` itself (True for a board without a readable file: its
    ``SortSpec`` was built in code, where the argument is explicit)."""
    if not board.path or not Path(board.path).is_file():
        return True
    try:
        sort = read_yaml(board.path).get("sort")
    except SpecError:
        return True
    return isinstance(sort, dict) and "descending" in sort


def _check_columns(board: LeaderboardSpec) -> None:
    located = [(f"columns[{i}]", c) for i, c in enumerate(board.columns)]
    located += [(f"tables.{title}[{i}]", c) for title, cols in board.tables.items() for i, c in enumerate(cols)]
    for where, column in (*located, ("sort.by", board.sort.by)):
        problem = _column_problem(column)
        if problem:
            raise SpecError(f"{board.path}: {where}: {problem}")
    key = board.sort.by
    if key in TEXT_COLUMNS:
        raise SpecError(f"{board.path}: sort.by: {key} is text and cannot order the board; sort by a number")
    if column_direction(key) == "none" and not _explicit_descending(board):
        raise SpecError(f"{board.path}: sort.by: {key} has no direction of better; give sort.descending (true or "
                        "false) explicitly")


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


def _metric_values(records: list[dict], column: str) -> list[float]:
    """The numeric values of ``column`` over ``records`` (a text column has none: see ``_text_value``)."""
    if column in TEXT_COLUMNS:
        return []
    values = (record_value(r, column) for r in records)
    return [v for v in values if v is not None]


def _aggregate(row: dict, records: list[dict], column: str, draws: SeedDraws) -> np.ndarray | None:
    """Fill ``row``'s ``<column>`` (mean over the seeds' records), ``<column> std`` (over seeds) and
    ``<column> ci_low`` / ``ci_high`` (the hierarchical bootstrap over seeds and items, ``bench.seedstats``);
    return the bootstrap draws (None where the column has no value)."""
    pairs = [(r, record_value(r, column)) for r in records]
    pairs = [(r, v) for r, v in pairs if v is not None]
    row[column] = float(np.mean([v for _, v in pairs])) if pairs else np.nan
    row[f"{column} std"] = float(np.std([v for _, v in pairs], ddof=1)) if len(pairs) > 1 else np.nan
    if not pairs or column in TEXT_COLUMNS:
        row[f"{column} ci_low"] = row[f"{column} ci_high"] = np.nan
        return None
    resampled = draws.resample(seed_matrix([v for _, v in pairs], [record_boot(r, column) for r, _ in pairs]))
    if len(pairs) == 1 and record_boot(pairs[0][0], column) is None:  # one value, no replicates: no interval
        row[f"{column} ci_low"] = row[f"{column} ci_high"] = np.nan
        return resampled
    row[f"{column} ci_low"], row[f"{column} ci_high"] = seed_interval(resampled)
    return resampled


def _text_value(records: list[dict], column: str) -> str | float:
    """The most common value of text column ``column`` over ``records`` (ties: the earliest seed's), NaN if none."""
    from collections import Counter

    values = [v for v in (record_text(r, column) for r in records) if v is not None]
    return Counter(values).most_common(1)[0][0] if values else np.nan


def build_table(board: LeaderboardSpec, store: Store) -> pd.DataFrame:
    """Rows: reference rows per task, then one row per (task, method entry) with the mean over seeds.

    Columns: ``task``, ``method``, ``reference``, ``seeds`` (ok / planned), ``status``, then each board column as
    ``<column>`` (mean) and ``<column> std`` (over seeds; NaN with one seed). Method rows are sorted by
    ``board.sort`` within each task; failed or missing entries sort last and say why in ``status``.
    """
    cells = plan(board)
    key = board.sort.by
    keys = list(dict.fromkeys((*board.all_columns, key)))
    rows: list[dict] = []
    geffect: dict[str, dict[str, dict]] = {t.label: {} for t in board.tasks}
    resampled: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for task in board.tasks:
        draws = SeedDraws.make(len(board.seeds))
        task_draws = resampled.setdefault(task.label, {c: {} for c in keys})
        data = load_task(task.task, task.split)
        preset = None
        if task.model:  # the preset's references (its checkpoints, in its prompt format)
            from bench.models.presets import apply_to_task, load_preset

            preset = load_preset(task.model)
            apply_to_task(preset, data)
        for kind in REFERENCE_KINDS:
            ids = list(dict.fromkeys(reference_id(data, kind, preset, seed) for seed in board.seeds))
            found = [r for r in (store.load("refs", i) for i in ids) if r is not None]
            row = {"task": task.label, "method": REFERENCE_LABELS[kind], "reference": True,
                   "seeds": f"{len(found)}/{len(ids)}" if len(ids) > 1 else "",
                   "status": "ok" if len(found) == len(ids) else "missing"}
            for column in keys:
                task_draws[column][row["method"]] = _aggregate(row, found, column, draws)
            rows.append(row)
        method_rows = []
        for entry in board.methods:
            mine = [c for c in cells if c.task == task and c.method == entry]
            records = [cell_record(c, board, store) for c in mine]
            done = [r for r in records if r is not None]
            ok = [r for r in done if r.get("status") == "ok"]
            failed = [r for r in done if r.get("status") != "ok"]
            if failed:
                error = failed[0].get("error") or {}
                status = f"{failed[0].get('status')}: {error.get('message', '')}"[:120]
            else:
                status = "ok" if len(ok) == len(mine) else f"missing {len(mine) - len(done)} of {len(mine)}"
            row = {"task": task.label, "method": entry.display, "reference": False,
                   "seeds": f"{len(ok)}/{len(mine)}", "status": status}
            for column in keys:
                task_draws[column][entry.display] = _aggregate(row, ok, column, draws)
                if column in TEXT_COLUMNS:
                    row[column] = _text_value(ok, column)
            method_rows.append(row)
            facts = _geffect_facts(mine, ok, store)
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


def _order_text(board: LeaderboardSpec) -> str:
    direction = column_direction(board.sort.by)
    if direction in IDEALS:
        return f"closest to {IDEALS[direction]:g} first"
    return "descending" if board.sort.descending else "ascending"


def score_of(column: str):
    """Map values of ``column`` so that smaller is better: the value (lower), its negation (higher), or the
    distance to the ideal (zero / half)."""
    direction = column_direction(column)
    if direction in IDEALS:
        return lambda v: np.abs(np.asarray(v, dtype=float) - IDEALS[direction])
    if direction == "higher":
        return lambda v: -np.asarray(v, dtype=float)
    return lambda v: np.asarray(v, dtype=float)


def ranking(table: pd.DataFrame, task: str, column: str, labels: Sequence[str] | None = None) -> Ranking | None:
    """Significance of ``column``'s order among ``task``'s method rows (or ``labels``), from the board's shared
    bootstrap draws (``table.attrs["draws"]``)."""
    draws = (table.attrs.get("draws") or {}).get(task, {}).get(column, {})
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
    distance to it, closest first (``sort.descending`` does not apply); others by value, in ``sort.descending``
    order."""
    direction = column_direction(key)
    if direction in IDEALS:
        return lambda r: (np.isnan(r[key]), 0.0 if np.isnan(r[key]) else distance_to_ideal(direction, r[key]))
    ascending = not board.sort.descending
    return lambda r: (np.isnan(r[key]), r[key] if ascending else -r[key])


def _geffect_facts(cells: list[Cell], ok: list[dict], store: Store) -> dict:
    """What the G-effect paragraph needs of one board entry, from its ``ok`` records and their ``geffect.jsonl``
    (means over seeds): the registered method and hyper-parameters, the cumulative G-effect per data set, |e_u|
    at the last two recorded steps, and NPO's mean weight at the first and last recorded step. Empty without
    G-effect data. Kept in ``table.attrs["geffect"]``, not in the table's columns (nor the CSV)."""
    from bench.geffect.plots import load_measurements

    summaries = [(r, r["geffect"]) for r in ok if r.get("geffect")]
    if not summaries or not cells:
        return {}
    # the board entry's hyper-parameters (defaults filled in): "+KL" pairs are entries of the board
    facts: dict = {"method": cells[0].spec.method, "hparams": dict(cells[0].spec.hparams), "seeds": len(summaries)}
    cumulative: dict[str, list[float]] = {}
    for _, summary in summaries:
        for name, value in (summary.get("cumulative") or {}).items():
            cumulative.setdefault(name, []).append(float(value))
    facts["cumulative"] = {name: float(np.mean(values)) for name, values in cumulative.items()}
    tails, weight_steps = [], []
    for record, _ in summaries:
        measured = load_measurements(store, record)
        if len(measured) >= 2:
            tails.append([(int(m["step"]), abs(float(m["total"].get("forget", np.nan)))) for m in measured[-2:]])
        weighted = [int(m["step"]) for m in measured if "npo_weight" in (m.get("diagnostics") or {})]
        if weighted:
            weight_steps.append([weighted[0], weighted[-1]])
    if tails:
        facts["e_u_tail"] = {"steps": [step for step, _ in tails[0]],
                             "abs": [float(np.mean([t[k][1] for t in tails])) for k in range(2)]}
    weights = [s["npo_weight"] for _, s in summaries if s.get("npo_weight")]
    if weights:
        facts["npo_weight"] = {k: float(np.mean([w[k] for w in weights])) for k in ("first", "last")}
        if weight_steps:
            facts["npo_weight"]["steps"] = weight_steps[0]
    return facts


def _format(value: float, std: float, spec: str = ".3f", low: float = np.nan, high: float = np.nan) -> str:
    """``value [low, high]`` with the hierarchical bootstrap 95% interval (over seeds and items) where it is known,
    else ``value ± std`` over seeds, else the value."""
    if np.isnan(value):
        return "—"
    if not (np.isnan(low) or np.isnan(high)):
        return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"
    if not np.isnan(std):
        return f"{value:{spec}} ± {std:{spec}}"
    return f"{value:{spec}}"


def _cell(row: pd.Series, column: str) -> str:
    """A method or reference row's cell: blank for run-only columns on reference rows, the text of a text column,
    3 significant digits for the cumulative G-effect (its values span orders of magnitude), else 3 decimals
    (2 for PrivLeak, a percentage); the seed spread or, with one seed, the bootstrap 95% interval beside it."""
    if row["reference"] and column in RUN_ONLY_COLUMNS:
        return ""
    if column in TEXT_COLUMNS:
        return row[column] if isinstance(row[column], str) else "—"
    spec = ".3g" if column.startswith(f"{GEFFECT}cumulative/") else ".1f" if "privleak_" in column else ".3f"
    low, high = row.get(f"{column} ci_low", np.nan), row.get(f"{column} ci_high", np.nan)
    return _format(row[column], row[f"{column} std"], spec, low, high)


def protocol_line(board: LeaderboardSpec) -> str:
    """One line stating the board's control protocol (kind, tau, utility measure, tolerance)."""
    control = board.control
    utility = f"{UTILITY_NAMES[control.utility]} (`{UTILITY_METRIC[control.utility]}`)"
    if control.kind == "mixing":
        return ("Control (arXiv 2406.09179): each unlearned model is mixed with the target, "
                "θ(α) = (1 − α)·θ_target + α·θ_unlearned, at the largest α with U(θ(α)) ≥ τ·U(target): "
                f"τ = {control.tau:g}, U = {utility}, bisection tolerance {control.tolerance:g}. "
                "`calibrated/…` columns are the metrics of θ(α*) (on reference rows: their raw values); `alpha` is "
                "α*, higher is better (less mixing needed; 1: the raw endpoint already keeps the utility); "
                "`tradeoff_auc` is the area under forget efficacy vs utility ratio over the probed α, higher is "
                "better.")
    if control.kind == "early_stop":
        return (f"Control (arXiv 2406.09179): early stopping: training stops at the first checkpoint (every "
                f"{board.budget.callback_every} steps) with U < τ·U(target) and keeps the last passing weights: "
                f"τ = {control.tau:g}, U = {utility}. No mixing calibration, so `calibrated/…`, `alpha` and "
                "`tradeoff_auc` are blank.")
    return "Control: none (raw endpoints only), so `calibrated/…`, `alpha` and `tradeoff_auc` are blank."


def _ga_label(board: LeaderboardSpec) -> str | None:
    """The board's plain gradient-ascent row: labelled ``GA``, else the ``ga`` entry without parameters."""
    entries = [m for m in board.methods if m.method == "ga" or m.display.lower() == "ga"]
    exact = [m for m in entries if m.display.lower() == "ga"]
    plain = [m for m in entries if m.method == "ga" and not m.params]
    pick = exact or plain or entries
    return pick[0].display if pick else None


def _names(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _best_group(sig: Ranking | None, rows: pd.DataFrame, column: str) -> str:
    """"the best is X at v, significantly ahead of the rest" or "X at v is best, statistically tied with A, B"."""
    if sig is None:  # a table without stored draws (built by hand): the point order, with no significance claim
        best = rows.loc[rows[column].astype(float).idxmin() if column_direction(column) == "lower"
                        else rows[column].astype(float).idxmax()]
        return f"the best is {best['method']} at {float(best[column]):.3f} (no uncertainty stored: not tested)"
    value = float(rows.loc[rows["method"] == sig.best, column].iloc[0])
    others = [m for m in sig.tied if m != sig.best]
    if not others:
        return f"the best is {sig.best} at {value:.3f}, significantly ahead of every other method"
    return (f"{sig.best} has the best mean ({value:.3f}) but is not significantly better than "
            f"{_names(others, limit=6)}")


def _strength(tau: float) -> str:
    size = abs(tau)
    if size < 0.1:
        return "essentially unrelated"
    word = "strongly" if size >= 0.7 else "moderately" if size >= 0.4 else "weakly"
    return f"{word} {'concordant' if tau > 0 else 'reversed'}"


def finding(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "Finding" paragraph, computed from ``table``: how the order of methods by raw ``forget/es`` compares
    with the order by ``calibrated/forget/es`` (Kendall tau-b, the methods that move most), and GA's raw utility
    against the target's."""
    from scipy.stats import kendalltau, rankdata

    raw_key, cal_key = "forget/es", CALIBRATED + "forget/es"
    u_key = UTILITY_METRIC[board.control.utility]
    threshold_tau = board.control.tau
    ga = _ga_label(board)
    paragraphs = []
    for task_name, rows in table.groupby("task", sort=False):
        methods = rows[~rows["reference"].astype(bool)]
        target = rows[rows["method"] == REFERENCE_LABELS["target"]]
        parts = []
        if raw_key in rows and cal_key in rows:
            both = methods[np.isfinite(methods[raw_key].astype(float)) & np.isfinite(methods[cal_key].astype(float))]
            if len(both) >= 2:
                sign = 1.0 if column_direction(raw_key) == "lower" else -1.0
                names = list(both["method"])
                raw, cal = both[raw_key].to_numpy(float), both[cal_key].to_numpy(float)
                raw_rank = rankdata(sign * raw, method="min").astype(int)
                cal_rank = rankdata(sign * cal, method="min").astype(int)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = kendalltau(raw, cal)
                stat, pvalue = float(result.statistic), float(result.pvalue)
                if np.isfinite(stat):
                    agreement = f"Kendall τ_b = {stat:.2f} (p = {pvalue:.2g}), the orders are {_strength(stat)}"
                else:
                    agreement = "Kendall τ_b is undefined, one of the orders being all ties"
                parts.append(f"Ranking the {len(names)} methods by raw `{raw_key}` and by `{cal_key}` (forget "
                             f"efficacy at matched utility; {column_direction(raw_key)} is better): {agreement}.")
                raw_sig, cal_sig = ranking(table, task_name, raw_key, names), ranking(table, task_name, cal_key, names)
                parts.append(f"Raw, {_best_group(raw_sig, both, raw_key)}; calibrated, "
                             f"{_best_group(cal_sig, both, cal_key)}.")
                moves = sorted(zip(names, raw_rank, cal_rank), key=lambda m: (-abs(m[2] - m[1]), m[1], m[0]))
                # a move is stated only where the two 95% rank intervals are disjoint
                moved = [m for m in moves if raw_sig and cal_sig and m[0] in raw_sig.ranks and m[0] in cal_sig.ranks
                         and (raw_sig.ranks[m[0]][1] < cal_sig.ranks[m[0]][0]
                              or cal_sig.ranks[m[0]][1] < raw_sig.ranks[m[0]][0])][:3]
                if raw_sig is None or cal_sig is None:
                    moved_points = [m for m in moves if m[1] != m[2]][:3]
                    if moved_points:
                        parts.append(f"Largest moves of the point ranks (rank raw → calibrated, of {len(names)}; "
                                     "no uncertainty stored): " +
                                     "; ".join(f"{n} {r} → {c}" for n, r, c in moved_points) + ".")
                elif moved:
                    parts.append(f"Largest significant moves (rank raw → calibrated, of {len(names)}; 95% rank "
                                 "intervals disjoint): " +
                                 "; ".join(f"{n} {raw_sig.rank_text(n)} → {cal_sig.rank_text(n)}"
                                           for n, _, _ in moved) + ".")
                else:
                    parts.append("No method's rank interval moves clear of its other one.")
            else:
                parts.append(f"Fewer than two methods have both `{raw_key}` and `{cal_key}`, so there is no "
                             "ranking to compare.")
        else:
            parts.append(f"Add `{raw_key}` and `{cal_key}` to the columns to compare the rankings.")
        ga_rows = methods[methods["method"] == ga] if ga else methods.iloc[0:0]
        if len(ga_rows) and u_key in rows and len(target) and np.isfinite(ga_rows[u_key].iloc[0]) and \
                np.isfinite(target[u_key].iloc[0]):
            u_ga, u_target = float(ga_rows[u_key].iloc[0]), float(target[u_key].iloc[0])
            threshold = threshold_tau * u_target
            share = f" ({100 * u_ga / u_target:.0f}% of it)" if u_target > 0 else ""
            side = "below" if u_ga < threshold else "at or above"
            text = (f"{ga}'s raw {UTILITY_NAMES[board.control.utility]} (`{u_key}`) is {u_ga:.3f} against the "
                    f"target's {u_target:.3f}{share}, {side} the calibration threshold τ·U(target) = "
                    f"{threshold:.3f}")
            if u_ga < threshold and raw_key in rows and np.isfinite(ga_rows[raw_key].iloc[0]):
                text += f": its raw `{raw_key}` of {float(ga_rows[raw_key].iloc[0]):.3f} is reached by losing " \
                        "retained knowledge too"
            if "alpha" in rows and cal_key in rows and np.isfinite(ga_rows["alpha"].iloc[0]) and \
                    np.isfinite(ga_rows[cal_key].iloc[0]):
                text += (f"; calibrated (α* = {float(ga_rows['alpha'].iloc[0]):.3f}) its `{raw_key}` is "
                         f"{float(ga_rows[cal_key].iloc[0]):.3f}")
            parts.append(text + ".")
        prefix = f"On `{task_name}`: " if table["task"].nunique() > 1 else ""
        paragraphs.append(f"**Finding.** {prefix}" + " ".join(parts))
    return "\n\n".join(paragraphs)


GEFFECT_SIGN_LINE = (
    "G-effect (arXiv 2502.19301): e(D) = ∇R(D)ᵀ∇L_u, the first-order fall of the risk R(D) (mean answer NLL) per "
    "unit step of the objective L_u; **negative e(forget) = the forget risk rises = unlearning**, e(retain) ≥ 0 "
    "wanted; `geffect/cumulative/<set>` is Σ lr·e(D)·steps over the recorded steps (forget ↓, others ↑), "
    "`geffect/top_group_share` (· no direction) the share of |cumulative e(forget)| in the most-affected block "
    "group (shallow/middle/deep thirds), `geffect/top_group` that group.")


def _has_geffect(board: LeaderboardSpec, table: pd.DataFrame) -> bool:
    return any(c in GEFFECT_COLUMNS for c in board.columns) or bool(table.attrs.get("geffect"))


def _paired_plain(facts: dict[str, dict], label: str) -> str | None:
    """The plain entry of a "+KL" variant ``label``: the same registered method whose hyper-parameters, apart from
    the retain regulariser (``retain_loss``, ``retain_weight``), are the KL variant's, with ``retain_loss: none``
    (the first such entry in board order), or None."""
    kl = facts[label]
    if kl["hparams"].get("retain_loss") != "kl":
        return None
    rest = {k: v for k, v in kl["hparams"].items() if k not in ("retain_loss", "retain_weight")}
    for other, f in facts.items():
        if other == label or f["method"] != kl["method"] or f["hparams"].get("retain_loss", "none") != "none":
            continue
        if {k: v for k, v in f["hparams"].items() if k not in ("retain_loss", "retain_weight")} == rest:
            return other
    return None


def _npo_label(board: LeaderboardSpec, facts: dict[str, dict]) -> str | None:
    """The board's plain NPO row with G-effect data: labelled ``NPO``, else an ``npo`` entry without regulariser."""
    entries = [m.display for m in board.methods if m.method == "npo" and m.display in facts]
    exact = [d for d in entries if d.lower() == "npo"]
    plain = [d for d in entries if facts[d]["hparams"].get("retain_loss", "none") == "none"]
    pick = exact or plain or entries
    return pick[0] if pick else None


RELEARN_KEY, RELEARN_MARGIN = "relearn/forget/es", 0.1
LM_EVAL_KEY = "lm_eval/synthetic_world_mc/acc"


def _draws(table: pd.DataFrame, task: str, column: str, label: str) -> np.ndarray | None:
    return (table.attrs.get("draws") or {}).get(task, {}).get(column, {}).get(label)


def _significantly_above(table: pd.DataFrame, task: str, column: str, label: str, base: np.ndarray | None,
                         margin: float, below: bool = False) -> bool:
    """Whether row ``label``'s ``column`` exceeds ``base`` (paired draws) by more than ``margin`` at 95%
    (``below``: falls short of it)."""
    mine = _draws(table, task, column, label)
    if mine is None or base is None:
        return False
    return significantly(base - mine if below else mine - base, margin)


def robustness_paragraph(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "Robustness and utility" paragraph, computed from ``table`` when it has the columns: which methods'
    forget knowledge comes back under the relearning attack beyond what the retain oracle learns from the same
    slice (``relearn/forget/es`` above the oracle's by more than ``RELEARN_MARGIN``), and which lose real-world
    utility (lm-eval multiple-choice accuracy below ``control.tau`` times the target's)."""
    paragraphs = []
    for task_name, rows in table.groupby("task", sort=False):
        methods = rows[~rows["reference"].astype(bool)]
        oracle = rows[rows["method"] == REFERENCE_LABELS["oracle"]]
        target = rows[rows["method"] == REFERENCE_LABELS["target"]]
        parts = []
        before_key = RELEARN_KEY + "_before"
        if {RELEARN_KEY, before_key} <= set(rows) and len(oracle) and \
                np.isfinite(oracle[[RELEARN_KEY, before_key]].to_numpy(float)).all():
            base, base_before = float(oracle[RELEARN_KEY].iloc[0]), float(oracle[before_key].iloc[0])
            known = methods[np.isfinite(methods[[RELEARN_KEY, before_key]].to_numpy(float)).all(axis=1)]
            forgot = known[known[before_key] <= base_before + RELEARN_MARGIN]
            oracle_draws = _draws(table, task_name, RELEARN_KEY, REFERENCE_LABELS["oracle"])
            if oracle_draws is None:  # a table without stored draws: the point comparison
                recovered = forgot[forgot[RELEARN_KEY] > base + RELEARN_MARGIN]
            else:
                recovered = forgot[[_significantly_above(table, task_name, RELEARN_KEY, m, oracle_draws,
                                                         RELEARN_MARGIN) for m in forgot["method"]]]
            recovered = recovered.sort_values(RELEARN_KEY, ascending=False)
            text = (f"After the relearning attack (fine-tuning on a quarter of the forget items), the retain oracle "
                    f"reaches `{RELEARN_KEY}` = {base:.3f} on the other items ({base_before:.3f} before). ")
            if not len(forgot):
                text += (f"No method had brought those items within {RELEARN_MARGIN} of the oracle's "
                         f"{base_before:.3f} before the attack.")
            else:
                text += (f"Of the {len(forgot)} methods that had forgotten them (ES before at most {RELEARN_MARGIN} "
                         "above the oracle's), ")
                if len(recovered):
                    top = recovered.iloc[0]
                    text += (f"{len(recovered)} recover significantly more than {RELEARN_MARGIN} above the oracle "
                             "(paired bootstrap over seeds, 95%): forgetting that "
                             f"a little fine-tuning undoes is suppression (most: {top['method']}, "
                             f"{float(top[before_key]):.3f} → {float(top[RELEARN_KEY]):.3f})")
                    robust = forgot[~forgot["method"].isin(recovered["method"])]
                    text += (f"; not significantly less robust than that: {_names(list(robust['method']))}."
                             if len(robust) else ".")
                else:
                    text += f"none recovers significantly more than {RELEARN_MARGIN} above the oracle."
            parts.append(text)
        if LM_EVAL_KEY in rows and len(target) and np.isfinite(target[LM_EVAL_KEY].iloc[0]):
            u_target = float(target[LM_EVAL_KEY].iloc[0])
            threshold = board.control.tau * u_target
            known = methods[np.isfinite(methods[LM_EVAL_KEY].astype(float))]
            target_draws = _draws(table, task_name, LM_EVAL_KEY, REFERENCE_LABELS["target"])
            lost = known[known[LM_EVAL_KEY] < threshold] if target_draws is None else known[[_significantly_above(
                table, task_name, LM_EVAL_KEY, m, board.control.tau * target_draws, 0.0, below=True)
                for m in known["method"]]]
            lost = lost.sort_values(LM_EVAL_KEY)
            text = (f"Real-world utility through lm-eval (`{LM_EVAL_KEY}`): the target scores {u_target:.3f}; ")
            text += (f"{len(lost)} of {len(known)} raw endpoints fall significantly below τ times that "
                     f"({threshold:.3f}; paired bootstrap over seeds, 95%): {_names(list(lost['method']))}."
                     if len(lost) else
                     f"no raw endpoint falls significantly below τ times that ({threshold:.3f}).")
            parts.append(text)
        if parts:
            prefix = f"On `{task_name}`: " if table["task"].nunique() > 1 else ""
            paragraphs.append(prefix + " ".join(parts))
    if not paragraphs:
        return ""
    return "**Robustness and utility.** " + "\n\n".join(paragraphs)


def geffect_paragraph(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "G-effect" paragraph, computed from the records behind ``table`` (``table.attrs["geffect"]``, set by
    ``build_table``): GA's cumulative e_u and whether its |e_u| settles (the last two recorded steps), NPO's mean
    weight at the first and last recorded step, and, for each method with a "+KL" variant on the board, whether
    the variant's cumulative e_r is higher than the plain objective's. Empty without G-effect data."""
    data = table.attrs.get("geffect") or {}
    ga = _ga_label(board)
    paragraphs = []
    for task_name, facts in data.items():
        parts = []
        if ga in facts and "forget" in facts[ga]["cumulative"]:
            e_u = facts[ga]["cumulative"]["forget"]
            direction = "rose" if e_u < 0 else "fell" if e_u > 0 else "did not move"
            text = (f"{ga}'s cumulative e_u is {e_u:.4g}: to first order its forget risk {direction} by "
                    f"{abs(e_u):.4g}")
            tail = facts[ga].get("e_u_tail")
            if tail and all(np.isfinite(tail["abs"])):
                (s0, s1), (a0, a1) = tail["steps"], tail["abs"]
                ratio = f" (×{a1 / a0:.3g})" if a0 > 0 else ""
                verdict = "shrinks, so e_u settles" if a1 < a0 else "does not shrink, so e_u does not settle"
                text += f"; |e_u| goes from {a0:.4g} at step {s0} to {a1:.4g} at step {s1}{ratio}: it {verdict}"
            parts.append(text + ".")
        npo = _npo_label(board, facts)
        if npo and "npo_weight" in facts[npo]:
            weight = facts[npo]["npo_weight"]
            steps = weight.get("steps")
            where = f" (step {steps[0]} → {steps[1]})" if steps else " (first → last recorded step)"
            trend = "falls" if weight["last"] < weight["first"] else "does not fall"
            parts.append(f"{npo}'s mean weight w {trend} from {weight['first']:.3f} to {weight['last']:.3f}{where}"
                         + (": it damps the ascent on items already forgotten." if weight["last"] < weight["first"]
                            else "."))
        higher, not_higher = [], []
        for label in facts:
            plain = _paired_plain(facts, label)
            if plain is None:
                continue
            e_kl, e_plain = facts[label]["cumulative"].get("retain"), facts[plain]["cumulative"].get("retain")
            if e_kl is None or e_plain is None:
                continue
            item = f"{label} {e_kl:.4g} vs {plain} {e_plain:.4g}"
            (higher if e_kl > e_plain else not_higher).append(item)
        if higher or not_higher:
            text = "Cumulative e_r with the KL retain regulariser against without: "
            pieces = []
            if higher:
                pieces.append(f"higher for {'; '.join(higher)}")
            if not_higher:
                pieces.append(f"not higher for {'; '.join(not_higher)}")
            parts.append(text + ", ".join(pieces) + ".")
        if parts:
            prefix = f"On `{task_name}`: " if len(board.tasks) > 1 else ""
            paragraphs.append(f"**G-effect.** {prefix}" + " ".join(parts))
    return "\n\n".join(paragraphs)


def _geffect_links(board: LeaderboardSpec, names: Sequence[str]) -> str:
    """Markdown linking the G-effect plots ``names`` (relative to ``board.out_dir``): the per-step plot(s) shown,
    the per-method heat maps and per-instance scatters linked by label."""
    from bench.geffect.plots import plot_index

    index = {str(path.relative_to(board.out_dir)): key for key, path in plot_index(board).items()}
    chosen = [(index[n], n) for n in names if n in index]
    lines = []
    for task in board.tasks:
        suffix = f" ({task.label})" if len(board.tasks) > 1 else ""
        mine = [(key, name) for key, name in chosen if key[1] == task]
        steps = [name for key, name in mine if key[0] == "steps"]
        lines += [f"![G-effect per step{suffix}]({name})" for name in steps]
        for kind, title in (("heatmap", "Per-block heat maps of e(forget) by step"),
                            ("instances", "Per-instance PG-effects on forget vs retain at the last recorded step")):
            links = [f"[{key[2]}]({name})" for key, name in mine if key[0] == kind]
            if links:
                lines.append(f"{title}{suffix}: " + " · ".join(links) + ".")
    return "\n\n".join(lines)


def to_markdown(board: LeaderboardSpec, table: pd.DataFrame, plots: Sequence[str] | None = None,
                geffect_plots: Sequence[str] | None = None) -> str:
    """Markdown with direction arrows in the headers (↑ higher is better, ↓ lower is better, →0/→½ best at that
    value, · no direction), the
    control protocol, the G-effect sign convention (when the board has G-effect columns or data), the "Finding"
    and "G-effect" paragraphs and links to the trade-off and G-effect plots.

    ``plots``: file names (relative to ``board.out_dir``) of the trade-off plots to link; None links those of
    ``bench.plots.plot_paths`` that exist. ``geffect_plots``: the same for the G-effect plots (``geffect/...``);
    None links those of ``bench.geffect.plots.plot_index`` that exist.
    """
    if plots is None:
        from bench.plots import PLOT_NAME, plot_paths

        plots = [p.name for p in plot_paths(board, board.out_dir / PLOT_NAME).values() if p.exists()]
    if geffect_plots is None:
        from bench.geffect.plots import plot_index

        geffect_plots = [str(p.relative_to(board.out_dir)) for p in plot_index(board).values() if p.exists()]
    from tabulate import tabulate

    ranked = "rank" in table

    def render(columns: Sequence[str], status: bool) -> str:
        headers = ["task", "method", "seeds", *(["rank"] if status and ranked else []),
                   *[f"{c} {ARROWS[column_direction(c)]}" for c in columns]]
        body = []
        for _, row in table.iterrows():
            name = f"*{row['method']}*" if row["reference"] else row["method"]
            if not row["reference"] and row.get("tied_best") is True:
                name = f"**{name}**"
            rank = [row.get("rank") if isinstance(row.get("rank"), str) else ""] if status and ranked else []
            body.append([row["task"], name, row["seeds"], *rank, *[_cell(row, c) for c in columns],
                         *([row["status"]] if status else [])])
        return tabulate(body, headers=headers + (["status"] if status else []), tablefmt="github",
                        disable_numparse=True) + "\n"

    title = f"# {board.name} leaderboard (v{board.version})\n\n"
    if table.attrs.get("release"):  # set by write_tables: the release these records are (bench.release)
        title += f"{table.attrs['release']}\n\n"
    description = f"{board.description.strip()}\n\n" if board.description else ""
    budget = board.budget
    tier = f"tier `{budget.tier}`: " if budget.tier else ""
    note = (f"Budget ({tier}AdamW): {budget.steps} steps, lr {budget.lr:g}, "
            f"batch {budget.batch_size} x {budget.grad_accum}, "
            f"seeds {list(board.seeds)}. Sorted by `{board.sort.by}` ({_order_text(board)}). Reference rows in "
            "italics. ↑/↓: higher/lower is better; →0/→½: best at 0 / 0.5 (MUSE PrivLeak: negative is "
            "under-unlearning, −100 a full leak, positive is over-unlearning; a membership AUC below 0.5 is "
            "over-unlearning, itself a leak); on the forget split less knowledge is "
            "better, except forget quality and truth ratio, which are best when they match the retain oracle. "
            "A seed is a replicate of the whole experiment: its own target, retain oracle and unlearning order. "
            "A cell is `mean [low, high]`: the mean over seeds and a 95% interval from a hierarchical bootstrap "
            "(seeds drawn with replacement, then one shared draw of the evaluated items; `bench/seedstats.py`), so "
            "it covers training noise and item sampling (also in `board.csv` as `<column> ci_low`, `<column> "
            "ci_high`, with `<column> std` over seeds); a column without per-item values (lm-eval, relearning) "
            "has seed variance only, or with one seed `± std` is absent. `rank`: the 95% interval of the row's "
            f"rank by `{board.sort.by}` over the same draws; **bold** methods are not significantly different "
            "from the best row (the paired bootstrap interval of the difference contains 0).\n\n")
    protocol = protocol_line(board) + "\n\n"
    if _has_geffect(board, table):
        protocol += GEFFECT_SIGN_LINE + "\n\n"
    markdown = title + description + note + protocol
    markdown += render(board.columns, status=True)
    markdown += "\n" + finding(board, table) + "\n"
    for title, columns in board.tables.items():
        markdown += f"\n## {title}\n\n" + render(columns, status=False)
    robustness = robustness_paragraph(board, table)
    if robustness:
        markdown += "\n" + robustness + "\n"
    paragraph = geffect_paragraph(board, table)
    if paragraph:
        markdown += "\n" + paragraph + "\n"
    if plots:
        markdown += "\n" + "\n\n".join(f"![trade-off]({name})" for name in plots) + "\n"
    links = _geffect_links(board, geffect_plots) if geffect_plots else ""
    if links:
        markdown += "\n" + links + "\n"
    return markdown


class NoRecordsError(SpecError):
    """The store holds no record of any cell of the board: there is nothing to tabulate (``ubench``: exit 2)."""


def missing_cells(board: LeaderboardSpec, store: Store) -> tuple[list[Cell], int]:
    """The cells of ``board`` that ``store`` holds no record for (``cell_record`` is None), and the number of
    cells. A failed record counts as present: a failed run is a result."""
    cells = plan(board)
    return [c for c in cells if cell_record(c, board, store) is None], len(cells)


def store_tables_dir(store_root: str | Path, board: LeaderboardSpec) -> Path:
    """Where tables built from a store go when they must not replace a board's own tables:
    ``<store>/boards/<name>/``."""
    return Path(store_root) / "boards" / board.name


def with_output(board: LeaderboardSpec, folder: str | Path) -> LeaderboardSpec:
    """``board`` with its tables (and releases) redirected to ``folder`` (its ``output``, made absolute)."""
    import dataclasses

    return dataclasses.replace(board, output=str(Path(folder).resolve()))


def write_tables(board: LeaderboardSpec, store: Store, redirect_partial: bool = True,
                 ) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Build the table from stored records and write ``<out_dir>/board.md``, ``board.csv``, the trade-off
    plot(s) (``bench.plots``; keys ``tradeoff...`` in the returned paths) and the G-effect plots in
    ``<out_dir>/geffect/`` (``bench.geffect.plots``; keys ``geffect/<stem>``), each atomically, then the
    self-contained ``board.html`` with those plots embedded (``bench.html_board``; key ``html``).

    Tables built from a store that lacks the board's records never replace the board's own tables:

    - no record of any cell: ``NoRecordsError`` (a ``SpecError``) naming the store, and nothing is written;
    - some cells missing (an interrupted run, a ``-k`` subset): with ``redirect_partial`` (the default) the tables
      go to ``<store>/boards/<name>/`` (``store_tables_dir``) instead of ``out_dir``; without it (the caller chose
      ``out_dir``, e.g. ``ubench board --out``) to ``out_dir``. Either way ``table.attrs["tables_note"]`` is a one-line
      message saying where they went and why (it is "" for a complete store);
    - plots of an earlier build are deleted only when every cell has a record (a folder fully rewritten).
    """
    from bench.geffect.plots import geffect_plots
    from bench.plots import PLOT_NAME, plot_paths, tradeoff_plot

    missing, n_cells = missing_cells(board, store)
    if len(missing) == n_cells:
        raise NoRecordsError(f"{board.path}: no record of any of the board's {n_cells} cells in the store "
                             f"{Path(store.root).resolve()}; nothing written (run the board, or pass the store "
                             "that holds its records)")
    complete = not missing
    note = ""
    if missing:
        shown = f"{len(missing)} of {n_cells} cells missing in {store.root}"
        target = store_tables_dir(store.root, board).resolve()
        if redirect_partial and target != board.out_dir.resolve():
            note = f"{shown}: wrote tables to {target}; the committed tables in {board.out_dir} are unchanged"
            board = with_output(board, target)
        else:
            note = f"{shown}: wrote partial tables to {board.out_dir}"
    table = build_table(board, store)
    table.attrs["tables_note"] = note
    from bench.release import release_line, release_status

    status = release_status(board, store)
    table.attrs["release"] = release_line(board, store, status)  # "" without releases: the tables are unchanged
    release_text = None if status is None else (
        f"{status.version} (content hash sha256:{status.content_hash[:16]}…)" if status.current
        else f"unreleased changes since {status.version}")
    out = board.out_dir
    paths = {"markdown": out / "board.md", "csv": out / "board.csv"}
    base = out / PLOT_NAME
    written = tradeoff_plot(board, store, base)
    if complete:
        for stale in set(plot_paths(board, base).values()) - set(written):
            stale.unlink(missing_ok=True)  # a plot of an earlier build whose task has no trade-off data now
    paths.update({p.stem: p for p in written})
    g_written = geffect_plots(board, store, prune=complete)
    paths.update({f"geffect/{p.stem}": p for p in g_written})
    g_names = [str(p.relative_to(out)) for p in g_written]
    atomic_write_text(paths["markdown"], to_markdown(board, table, [p.name for p in written], g_names))
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    from bench.html_board import write_html

    paths["html"] = write_html(board, table, store, [p.name for p in written], g_names, release_text)
    return table, paths
