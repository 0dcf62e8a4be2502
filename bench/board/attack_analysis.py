"""The attack sentence of a board's "Robustness and utility" paragraph: under which attacks each method's forget
extraction strength rises significantly (the paired hierarchical bootstrap over seeds and items of
``bench.board.seedstats``: attacked and plain values of a row share every draw), next to the retain oracle's
own rise under the same attack (what an attack does to a model that never learned the forget set)."""

from __future__ import annotations

import pandas as pd

from bench.attacks.base import WORST
from bench.board.findings import name_list
from bench.board.format import REFERENCE_LABELS
from bench.board.seedstats import significantly
from bench.board.table import column_draws
from bench.grid.columns import key_text, parse_key
from bench.runtime.keys import RAW, MetricKey

PLAIN_KEY = key_text(MetricKey("es", "forget", RAW))


def attack_columns(table: pd.DataFrame, task: str) -> list[str]:
    """The board's raw ``forget/es@<attack>`` columns with draws (the worst case excluded)."""
    out = []
    for column in (table.attrs.get("draws") or {}).get(task, {}):  # the columns that have draws
        key = parse_key(column)
        if key.attack not in (None, WORST) and key.name == "es" and key.split == "forget" and key.view == RAW:
            out.append(column)
    return out


def _risers(table: pd.DataFrame, task: str, rows: pd.DataFrame, column: str) -> list[str]:
    out = []
    for label in rows["method"]:
        attacked, plain = column_draws(table, task, column).get(label), column_draws(table, task, PLAIN_KEY).get(label)
        if attacked is not None and plain is not None and significantly(attacked - plain):
            value = rows.loc[rows["method"] == label]
            out.append(f"{label} ({float(value[PLAIN_KEY].iloc[0]):.3f} → {float(value[column].iloc[0]):.3f})")
    return out


def attack_sentence(table: pd.DataFrame, task: str, rows: pd.DataFrame, methods: pd.DataFrame) -> str | None:
    """One sentence per board: the attacks under which forget ES rises significantly, and for which methods."""
    columns = attack_columns(table, task)
    if not columns or PLAIN_KEY not in table.columns:
        return None
    oracle = rows[rows["method"] == REFERENCE_LABELS["oracle"]]
    parts, quiet = [], []
    for column in columns:
        attack = parse_key(column).attack
        risers = _risers(table, task, methods, column)
        if not risers:
            quiet.append(f"`{attack}`")
            continue
        oracle_rise = _risers(table, task, oracle, column)
        baseline = "the retain oracle's rises too" if oracle_rise else "the retain oracle's does not"
        parts.append(f"under `{attack}` for {name_list(risers, limit=5)} ({baseline})")
    text = "Attacks (forget ES attacked vs plain, paired seed-and-item bootstrap, 95%): "
    text += ("it rises significantly " + "; ".join(parts) + ". ") if parts else "it rises significantly for no method. "
    if quiet:
        text += f"No method's forget ES rises significantly under {', '.join(quiet)}."
    return text.strip()
