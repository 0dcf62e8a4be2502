"""The columns a board may show: every column key names a number of a stored record, with a direction of better.

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
``→½``; as the sort key it orders rows by distance to that value, closest first. ``check_columns`` rejects a bad
column or sort key of a board (one line, with a did-you-mean) before any of its cells runs.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from bench.geffect.callback import DATA_SETS as GEFFECT_SETS
from bench.metrics.base import ItemMetric
from bench.metrics.evaluate import SPLIT_ROLES
from bench.registry import METRICS
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError, read_yaml

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
# G-effect columns (arXiv 2502.19301), read from a run's ``geffect`` summary, with their direction of better
# ("none": no direction); blank on reference rows. ``geffect/top_group`` is text.
GEFFECT = "geffect/"
GEFFECT_COLUMNS = {**{f"{GEFFECT}cumulative/{s}": "lower" if s == "forget" else "higher" for s in GEFFECT_SETS},
                   f"{GEFFECT}top_group_share": "none", f"{GEFFECT}top_group": "none"}
TEXT_COLUMNS = frozenset({f"{GEFFECT}top_group"})
# Columns that are blank on reference rows.
RUN_ONLY_COLUMNS = frozenset({*CONTROL_COLUMNS, *GEFFECT_COLUMNS})


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
            roles = METRICS.get(name).roles
            raw.extend(f"{split}/{name}" for split in SPLITS if SPLIT_ROLES[split] in roles)
        else:
            raw.append(name)
    return [*raw, *(CALIBRATED + key for key in raw), *CONTROL_COLUMNS, *GEFFECT_COLUMNS]


def column_problem(column: str) -> str | None:
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


def check_columns(board: LeaderboardSpec) -> None:
    located = [(f"columns[{i}]", c) for i, c in enumerate(board.columns)]
    located += [(f"tables.{title}[{i}]", c) for title, cols in board.tables.items() for i, c in enumerate(cols)]
    for where, column in (*located, ("sort.by", board.sort.by)):
        problem = column_problem(column)
        if problem:
            raise SpecError(f"{board.path}: {where}: {problem}")
    key = board.sort.by
    if key in TEXT_COLUMNS:
        raise SpecError(f"{board.path}: sort.by: {key} is text and cannot order the board; sort by a number")
    if column_direction(key) == "none" and not _explicit_descending(board):
        raise SpecError(f"{board.path}: sort.by: {key} has no direction of better; give sort.descending (true or "
                        "false) explicitly")
