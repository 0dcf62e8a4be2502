"""The tables of the HTML board: sortable headers with the direction of better and what each column measures (the
declaration of its metric or evaluation: ``bench.grid.columns.column_description``), cells formatted as in
``board.md``, reference rows pinned above their task's method rows. The markup is the template
``bench/board/templates/table.html.j2``; this module computes what it shows."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from bench.board.format import ARROWS, cell_text
from bench.board.render import render
from bench.grid.columns import column_description, column_direction, is_text, sort_descending
from bench.metrics.base import IDEALS
from bench.specs.board import LeaderboardSpec

DIRECTION_TEXT = {"higher": "↑ higher is better", "lower": "↓ lower is better", "zero": "→0 closest to 0 is best",
                  "half": "→½ closest to 0.5 is best", "none": "· no direction of better"}


def _number(value: object) -> str:
    """A sort key for ``data-sort``: the float's repr, or "" for a missing value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return repr(number) if math.isfinite(number) else ""


def _split_spread(text: str) -> tuple[str, str | None]:
    """A formatted cell (``bench.board.format.cell_text``) as its value and its interval or spread (None if none),
    which the page shows in a quieter span."""
    match = re.match(r"^(\S+)(\s(?:\[|±).*)$", text)
    return (match.group(1), match.group(2)) if match else (text, None)


def detail_id(board: LeaderboardSpec, task_label: str, method: str) -> str | None:
    tasks = [t.label for t in board.tasks]
    methods = [m.display for m in board.methods]
    if task_label not in tasks or method not in methods:
        return None
    return f"detail-{tasks.index(task_label)}-{methods.index(method)}"


def table_html(board: LeaderboardSpec, table: pd.DataFrame, columns: Sequence[str], status: bool, name: str) -> str:
    """One sortable table of the page (``templates/table.html.j2``): ``columns`` of ``table``, with a status column
    when ``status``; ``name`` tells the page's tables apart."""
    return render("table.html.j2", name=name, heads=_heads(board, columns, status),
                  bodies=_bodies(board, table, columns, status))


def _heads(board: LeaderboardSpec, columns: Sequence[str], status: bool) -> list[dict]:
    """The header cells: label, sort kind (text/num), tooltip, initial sort state; metric columns add the column key,
    the direction of better and its arrow."""
    fixed = [("task", "text", "the task and forget split")] if len(board.tasks) > 1 else []
    fixed += [("method", "text", "method label; click a row for its details"),
              ("seeds", "text", "seeds with an ok record / seeds planned")]
    heads = [{"label": label, "kind": kind, "tip": tip, "sort": "none", "column": None} for label, kind, tip in fixed]
    for column in columns:
        direction = column_direction(column)
        kind = "text" if is_text(column) else "num"
        tip = f"{column}: {column_description(column)}. {DIRECTION_TEXT[direction]}."
        sort = "none"
        if column == board.sort.by:  # by distance to an ideal value: in neither order of the values ("other")
            sort = "other" if direction in IDEALS else "descending" if sort_descending(board) else "ascending"
        heads.append({"label": column, "kind": kind, "tip": tip, "sort": sort, "column": column,
                      "direction": direction, "arrow": ARROWS[direction]})
    if status:
        heads.append({"label": "status", "kind": "text", "tip": "ok, or why the entry has no full result",
                      "sort": "none", "column": None})
    return heads


def _bodies(board: LeaderboardSpec, table: pd.DataFrame, columns: Sequence[str], status: bool) -> list[dict]:
    """Per task (in table order) its reference rows and its method rows (``_row``)."""
    bodies = []
    for task_label, rows in table.groupby("task", sort=False):
        refs, runs = [], []
        for _, row in rows.iterrows():
            reference = bool(row["reference"])
            detail = None if reference else detail_id(board, str(task_label), str(row["method"]))
            (refs if reference else runs).append(_row(board, row, columns, status, reference, detail))
        bodies.append({"refs": refs, "runs": runs})
    return bodies


def _row(board: LeaderboardSpec, row: pd.Series, columns: Sequence[str], status: bool, reference: bool,
         detail: str | None) -> dict:
    """One row: task (shown when the board has several), method label, seeds, a cell per column (text columns sort
    by their text, numbers by ``data-sort``), status."""
    cells = []
    for column in columns:
        text = cell_text(row, column)
        if is_text(column):
            cells.append({"text": True, "value": text, "sort": text if text not in ("", "—") else ""})
        else:
            value, spread = _split_spread(text)
            cells.append({"text": False, "value": value, "spread": spread,
                          "sort": "" if text == "" else _number(row[column])})
    return {"task": row["task"] if len(board.tasks) > 1 else None, "method": row["method"], "seeds": row["seeds"],
            "reference": reference, "detail": detail, "cells": cells,
            "status": str(row["status"]) if status else None}
