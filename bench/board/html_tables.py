"""The tables of the HTML board: sortable headers with the direction of better and what each column measures (the
declaration of its metric or evaluation: ``bench.grid.columns.column_description``), cells formatted as in
``board.md``, reference rows pinned above their task's method rows."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

import pandas as pd

from bench.board.format import ARROWS, cell_text
from bench.grid.columns import column_description, column_direction, is_text
from bench.metrics.base import IDEALS
from bench.specs.board import LeaderboardSpec

DIRECTION_TEXT = {"higher": "↑ higher is better", "lower": "↓ lower is better", "zero": "→0 closest to 0 is best",
                  "half": "→½ closest to 0.5 is best", "none": "· no direction of better"}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object) -> str:
    """A sort key for ``data-sort``: the float's repr, or "" for a missing value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return repr(number) if math.isfinite(number) else ""


def _cell_html(text: str) -> str:
    """A formatted cell (``bench.board.format.cell_text``) with its interval or spread in a quieter span."""
    match = re.match(r"^(\S+)(\s(?:\[|±).*)$", text)
    if not match:
        return esc(text)
    return f"{esc(match.group(1))}<span class=\"ci\">{esc(match.group(2))}</span>"


def detail_id(board: LeaderboardSpec, task_label: str, method: str) -> str | None:
    tasks = [t.label for t in board.tasks]
    methods = [m.display for m in board.methods]
    if task_label not in tasks or method not in methods:
        return None
    return f"detail-{tasks.index(task_label)}-{methods.index(method)}"


def table_html(board: LeaderboardSpec, table: pd.DataFrame, columns: Sequence[str], status: bool, name: str) -> str:
    show_task = len(board.tasks) > 1
    heads = []
    fixed = [("task", "text", "the task and forget split")] if show_task else []
    fixed += [("method", "text", "method label; click a row for its details"),
              ("seeds", "text", "seeds with an ok record / seeds planned")]
    for label, kind, tip in fixed:
        heads.append(f"<th scope=\"col\" data-kind=\"{kind}\" title=\"{esc(tip)}\" aria-sort=\"none\">"
                     f"<button type=\"button\" class=\"sort\">{esc(label)}</button></th>")
    for column in columns:
        direction = column_direction(column)
        kind = "text" if is_text(column) else "num"
        tip = f"{column}: {column_description(column)}. {DIRECTION_TEXT[direction]}."
        sort = "none"
        if column == board.sort.by:  # by distance to an ideal value: in neither order of the values ("other")
            sort = "other" if direction in IDEALS else "descending" if board.sort.descending else "ascending"
        heads.append(f"<th scope=\"col\" data-kind=\"{kind}\" data-column=\"{esc(column)}\" "
                     f"data-direction=\"{direction}\" title=\"{esc(tip)}\" aria-sort=\"{sort}\">"
                     f"<button type=\"button\" class=\"sort\">{esc(column)} <span class=\"dir dir-{direction}\">"
                     f"{ARROWS[direction]}</span></button></th>")
    if status:
        heads.append("<th scope=\"col\" data-kind=\"text\" title=\"ok, or why the entry has no full result\" "
                     "aria-sort=\"none\"><button type=\"button\" class=\"sort\">status</button></th>")
    bodies = []
    for task_label, rows in table.groupby("task", sort=False):
        refs, runs = [], []
        for _, row in rows.iterrows():
            reference = bool(row["reference"])
            cells = [f"<td>{esc(row['task'])}</td>"] if show_task else []
            detail = None if reference else detail_id(board, str(task_label), str(row["method"]))
            label = esc(row["method"])
            if reference:
                cells.append(f"<th scope=\"row\" class=\"method\">{label} <span class=\"badge\">reference</span></th>")
            elif detail:
                cells.append(f"<th scope=\"row\" class=\"method\"><a class=\"detail-link\" href=\"#{detail}\">"
                             f"{label}</a></th>")
            else:
                cells.append(f"<th scope=\"row\" class=\"method\">{label}</th>")
            cells.append(f"<td class=\"seeds\">{esc(row['seeds'])}</td>")
            for column in columns:
                text = cell_text(row, column)
                if is_text(column):
                    sort_key = text if text not in ("", "—") else ""
                    cells.append(f"<td data-sort=\"{esc(sort_key)}\">{esc(text)}</td>")
                else:
                    sort_key = "" if text == "" else _number(row[column])
                    cells.append(f"<td class=\"num\" data-sort=\"{sort_key}\">{_cell_html(text)}</td>")
            if status:
                state = str(row["status"])
                cells.append(f"<td class=\"status{'' if state == 'ok' else ' bad'}\">{esc(state)}</td>")
            attrs = " class=\"ref\"" if reference else (
                f" class=\"run\" data-detail=\"{detail}\" tabindex=\"0\"" if detail else " class=\"run\"")
            (refs if reference else runs).append(f"<tr{attrs}>{''.join(cells)}</tr>")
        if refs:
            bodies.append("<tbody class=\"refs\">\n" + "\n".join(refs) + "\n</tbody>")
        bodies.append("<tbody class=\"runs\">\n" + "\n".join(runs) + "\n</tbody>")
    return (f"<div class=\"scroll\"><table class=\"board\" data-table=\"{esc(name)}\">\n<thead><tr>{''.join(heads)}"
            "</tr></thead>\n" + "\n".join(bodies) + "\n</table></div>\n")
