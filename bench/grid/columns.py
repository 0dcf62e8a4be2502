"""The columns a board may show: every column is the string form of a metric key (``bench.runtime.keys.MetricKey``)
naming a number of a stored record, with a direction of better.

Column keys (parsed by ``parse_key``, written back by ``key_text``; ``bench.grid.column_kinds`` says how each kind is
read):

- ``split/metric`` or ``metric``: the raw endpoint, from a record's ``metrics`` (e.g. ``forget/es``,
  ``forget_quality``);
- ``calibrated/<raw key>``: the same metric of the calibrated model theta(alpha*) (arXiv 2406.09179), from
  ``control.calibrated_metrics``; on reference rows (target, retain oracle) it equals the raw value;
- ``alpha``: the calibrated mixing weight alpha* (``control.calibration.alpha``), higher is better (less mixing
  with the target was needed; 1 means the raw endpoint already keeps the utility);
- ``tradeoff_auc``: the area under the forget-efficacy vs utility frontier (``control.tradeoff.auc``), higher is
  better. ``alpha`` and ``tradeoff_auc`` are blank on reference rows;
- the keys of a registered evaluation (``bench.registry.EVALUATIONS``), with the directions it declares:
  ``lm_eval/<task>/<metric>`` (lm-eval utility, higher), ``relearn/forget/<metric>`` (the relearning attack: the
  forget knowledge recovered after fine-tuning on a slice, lower), and the G-effect summary (arXiv 2502.19301:
  ``geffect/cumulative/<set>``, forget lower, the others higher; ``geffect/realised/<set>`` and
  ``geffect/measured/<set>``, forget higher, the others lower; ``geffect/realised_error/<set>``,
  ``geffect/paper_error/<set>`` and ``geffect/top_group_share``, no direction of better,
  marked ``·``, as the sort key it needs an explicit ``descending``; ``geffect/top_group``, text: the most common
  value over seeds, never a sort key; blank on reference rows). None of them has a calibrated form.

A metric best at an ideal value (direction ``zero`` or ``half``: PrivLeak, membership AUCs) is marked ``→0`` /
``→½``; as the sort key it orders rows by distance to that value, closest first. ``check_columns`` rejects a bad
column or sort key of a board (one line, with a did-you-mean) before any of its cells runs.
"""

from __future__ import annotations

import difflib
from functools import cache

from bench.attacks.base import WORST, WORST_METRICS
from bench.grid.column_kinds import (
    CONTROL_DESCRIPTIONS,
    AttackMetricKind,
    ControlKind,
    EngineKind,
    EvaluationKind,
    KeyKind,
)
from bench.registry import ATTACKS, EVALUATIONS, METRICS
from bench.runtime.keys import CALIBRATED, CALIBRATED_PREFIX, CONTROL, ENGINE, MetricKey, split_key
from bench.runtime.records import Record, ReferenceRecord
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

ENGINE_KIND, CONTROL_KIND, ATTACK_METRIC_KIND = EngineKind(), ControlKind(), AttackMetricKind()


@cache
def parse_key(text: str) -> MetricKey:
    """The metric key of a column's string form (any string parses; ``column_problem`` says whether it is valid)."""
    view, path, attack = split_key(text)
    head, sep, rest = path.partition("/")
    if sep and head in EVALUATIONS:
        spec = EVALUATIONS.get(head)
        parts = rest.split("/")
        if len(parts) == 1:
            name, split = rest, None
        elif spec.name_first:
            name, split = parts[0], "/".join(parts[1:])
        else:
            split, name = "/".join(parts[:-1]), parts[-1]
        return MetricKey(name, split, view, attack, head)
    if path in CONTROL_DESCRIPTIONS:
        return MetricKey(path, None, view, attack, CONTROL)
    split, _, name = path.rpartition("/")
    return MetricKey(name, split or None, view, attack, ENGINE)


def kind_of(key: MetricKey) -> KeyKind:
    if key.evaluation == ENGINE:
        if key.attack is not None and key.name not in METRICS and key.attack in ATTACKS:
            return ATTACK_METRIC_KIND
        return ENGINE_KIND
    if key.evaluation == CONTROL:
        return CONTROL_KIND
    return _evaluation_kind(key.evaluation)


@cache
def _evaluation_kind(name: str) -> EvaluationKind:
    return EvaluationKind(EVALUATIONS.get(name))


def key_text(key: MetricKey) -> str:
    """The string form of ``key`` (``parse_key`` reads it back)."""
    return kind_of(key).text_of(key)


def _kind(column: str) -> tuple[MetricKey, KeyKind]:
    key = parse_key(column)
    return key, kind_of(key)


def column_direction(column: str) -> str:
    """Direction of better of a column key (see the module docstring): a metric's from its declaration, and the
    same for its ``calibrated/`` form; ``alpha`` and ``tradeoff_auc`` are higher-is-better; a registered
    evaluation's from its declaration (``none`` for the direction-less ones)."""
    key, kind = _kind(column)
    return kind.direction(key)


def column_description(column: str) -> str:
    """One line saying what a column key measures, from the declaration of its metric or evaluation."""
    key, kind = _kind(column)
    text = kind.describe(key)
    if key.attack == WORST:
        return f"{text}; the worst case over the board's attacks (the highest value, no attack included)"
    if key.attack is not None and kind is not ATTACK_METRIC_KIND:
        return f"{text}; under the {key.attack} attack: {ATTACKS.get(key.attack).summary}"
    return text


def is_text(column: str) -> bool:
    """Whether the column's values are text (``geffect/top_group``)."""
    key, kind = _kind(column)
    return kind.is_text(key)


def run_only(column: str) -> bool:
    """Whether the column is blank on reference rows (the control and G-effect columns)."""
    return _kind(column)[1].run_only


def number_format(column: str) -> str:
    """How a board prints the column's numbers (a format spec: ``.3f``, ``.1f`` for PrivLeak, ``.3g`` for the
    cumulative G-effect, whose values span orders of magnitude)."""
    key, kind = _kind(column)
    return kind.number_format(key)


def printed_digits(column: str) -> int:
    """The decimals (or significant digits) a board prints of the column (``number_format``)."""
    return int(number_format(column).strip(".")[:-1])


def known_columns() -> list[str]:
    """Every valid column key whose set is fixed: raw metric keys, their ``calibrated/`` forms, ``alpha`` and
    ``tradeoff_auc``, then the fixed keys of the registered evaluations (the G-effect columns)."""
    evaluations = [k for name in EVALUATIONS.names() for k in _evaluation_kind(name).known()]
    return [*ENGINE_KIND.known(), *CONTROL_KIND.known(), *evaluations]


def _unknown_metric(key: MetricKey, column: str) -> str:
    """The error of a key naming no registered metric: a did-you-mean over every known column for a calibrated key
    or a near miss of a control column, else the registry's own (with its did-you-mean)."""
    close = difflib.get_close_matches(column, known_columns(), n=1, cutoff=0.6)
    if key.view == CALIBRATED or (close and close[0] in CONTROL_DESCRIPTIONS):
        hint = (f"; did you mean {close[0]!r}?" if close else
                f" (a column is split/metric, metric, {CALIBRATED_PREFIX}<column>, alpha or tradeoff_auc; metrics: "
                f"{', '.join(METRICS.names())})")
        return f"unknown column {column!r}{hint}"
    try:
        METRICS.get(key.name)
    except LookupError as exc:
        return str(exc)
    return f"unknown column {column!r}"


def _attack_problem(key: MetricKey, column: str) -> str | None:
    """Why ``column``'s ``@attack`` part is not valid: an attack is a registered one (``bench.attacks``) or
    ``worst``, on a split metric of the engine (``forget/es@quant4``)."""
    if key.evaluation != ENGINE or key.split is None:
        return f"unknown column {column!r}; an attack applies to a split's metric, e.g. forget/es@quant4"
    if key.attack == WORST:
        kept = ', '.join(f'forget/{m}@worst' for m in WORST_METRICS)
        return None if key.name in WORST_METRICS else f"unknown column {column!r}; the worst case is kept for {kept}"
    if key.attack not in ATTACKS:
        close = difflib.get_close_matches(key.attack, [*ATTACKS.names(), WORST], n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f" (attacks: {', '.join(ATTACKS.names())}, worst)"
        return f"unknown attack {key.attack!r} in column {column!r}{hint}"
    measured = ATTACKS.get(key.attack).metrics
    if key.name not in measured:
        return f"unknown column {column!r}; the {key.attack} attack measures {', '.join(measured)}"
    return None


def column_problem(column: str) -> str | None:
    """Why ``column`` is not a valid column key (one line, with a did-you-mean), or None when it is valid."""
    key, kind = _kind(column)
    if key.attack is not None and (problem := _attack_problem(key, column)):
        return problem
    if key.view == CALIBRATED and not kind.calibrated:
        raw = key_text(key.raw)
        return f"{raw} has no calibrated form; write {raw}"
    if kind is ENGINE_KIND and key.name not in METRICS:
        return _unknown_metric(key, column)
    return kind.problem(key, column)


def sort_descending(board: LeaderboardSpec) -> bool:
    """Whether the board's method rows go from the highest value of its sort column down: ``sort.descending`` when
    the board gives it, else best first by the column's direction of better (``higher``: descending). A column best
    at an ideal value sorts by distance to it, where this does not apply."""
    if board.sort.descending is not None:
        return board.sort.descending
    return column_direction(board.sort.by) == "higher"


def check_columns(board: LeaderboardSpec) -> None:
    """Every column and the sort key name a valid column (one line naming the field otherwise), the sort key is a
    number, and it has a direction of better unless ``sort.descending`` is given."""
    if not board.sort.by:
        raise SpecError(f"{board.path}: sort.by: give the column to sort by (the board lists no column to default to)")
    located = [(f"columns[{i}]", c) for i, c in enumerate(board.columns)]
    located += [(f"tables.{title}[{i}]", c) for title, cols in board.tables.items() for i, c in enumerate(cols)]
    for where, column in (*located, ("sort.by", board.sort.by)):
        problem = column_problem(column)
        if problem:
            raise SpecError(f"{board.path}: {where}: {problem}")
    key = board.sort.by
    if is_text(key):
        raise SpecError(f"{board.path}: sort.by: {key} is text and cannot order the board; sort by a number")
    if column_direction(key) == "none" and board.sort.descending is None:
        raise SpecError(f"{board.path}: sort.by: {key} has no direction of better; give sort.descending (true or "
                        "false) explicitly")


def _readable(record: Record | None, kind: KeyKind) -> bool:
    """An ``ok`` record that has the kind's numbers (a reference has none of the run-only columns)."""
    return record is not None and record.ok and not (kind.run_only and isinstance(record, ReferenceRecord))


def record_value(record: Record | None, column: str, field: str = "value") -> float | None:
    """The value of ``column`` in an ``ok`` record, or None when the record lacks it. ``field`` = ``ci_low`` /
    ``ci_high`` reads the stored 95% interval instead (None where the column has none)."""
    key, kind = _kind(column)
    if not _readable(record, kind) or kind.is_text(key):
        return None
    entry = kind.entry(record, key)
    value = None if entry is None else getattr(entry, field)
    return None if value is None else float(value)


def record_boot(record: Record | None, column: str) -> list | None:
    """The metric's values on the evaluation's shared item draws (``boot``), or None (no replicates stored)."""
    key, kind = _kind(column)
    if not _readable(record, kind):
        return None
    entry = kind.entry(record, key)
    return None if entry is None or entry.boot is None else list(entry.boot)


def record_text(record: Record | None, column: str) -> str | None:
    """The value of text column ``column`` (``geffect/top_group``) in an ``ok`` run record, or None."""
    key, kind = _kind(column)
    if not _readable(record, kind) or not kind.is_text(key):
        return None
    return kind.text(record, key)
