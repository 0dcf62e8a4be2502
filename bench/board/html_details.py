"""The detail view of one board entry in the HTML board: registered method, hyper-parameters, per seed the run id,
status, error, budget declared and used, and the G-effect summary with the method's plots."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.board.html_tables import detail_id, esc
from bench.grid.cells import BoardRecords, read_board
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec, MethodEntry, TaskEntry


@dataclass
class EntryDetails:
    """What the detail view of one board entry (task, method entry) shows: its cells' specs and records."""

    task: TaskEntry
    entry: MethodEntry
    method: str  # registered name
    hparams: dict  # with defaults filled in (the run spec's)
    runs: list[tuple[int, str, RunRecord | None]] = field(default_factory=list)  # (seed, run id, record or None)
    geffect: dict = field(default_factory=dict)  # the G-effect paragraph's facts (table.attrs["geffect"])


@dataclass(frozen=True)
class Image:
    """A PNG to embed: its name relative to the board's folder, a caption, its bytes, and what it belongs to."""

    name: str
    caption: str
    data: bytes
    kind: str = "tradeoff"  # tradeoff | steps | heatmap | instances
    task: str = ""  # task label
    method: str | None = None  # method label (heat maps and per-instance plots)


def entry_details(board: LeaderboardSpec, store: Store, table: pd.DataFrame | None = None,
                  records: BoardRecords | None = None) -> dict[tuple[str, str], EntryDetails]:
    """Per (task label, method label): the board entry's registered method, hyper-parameters and, per seed, the
    record that represents the cell on the board (``bench.grid.cells.cell_record``)."""
    facts = (table.attrs.get("geffect") or {}) if table is not None else {}
    records = records or read_board(board, store)
    out: dict[tuple[str, str], EntryDetails] = {}
    for cell, record in zip(records.cells, records.records):
        key = (cell.task.label, cell.method.display)
        if key not in out:
            out[key] = EntryDetails(cell.task, cell.method, cell.spec.method, dict(cell.spec.hparams),
                                    geffect=(facts.get(cell.task.label) or {}).get(cell.method.display) or {})
        out[key].runs.append((cell.seed, cell.spec.run_id, record))
    return out


def _value(value: object) -> str:
    """Escaped text of a hyper-parameter or count: strings as they are, anything else as JSON (``1.0``, ``true``)."""
    if isinstance(value, str):
        return esc(value)
    return esc(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _kv(rows: Sequence[tuple[str, str]], cls: str) -> str:
    body = "".join(f"<tr><th scope=\"row\">{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class=\"kv {cls}\">{body}</table>"


def _runs_html(details: EntryDetails) -> str:
    """A table with one column per seed: run id, status, error, the budget declared and used, and the search."""
    runs = details.runs
    heads = "".join(f"<th scope=\"col\">seed {esc(seed)}</th>" for seed, _, _ in runs)
    fields: list[tuple[str, list[str]]] = [("run id", [f"<code>{esc(run_id)}</code>" for _, run_id, _ in runs])]
    records = [record for _, _, record in runs]
    fields.append(("status", [esc(r.status) if r else "not run" for r in records]))
    if any(r and r.error for r in records):
        fields.append(("error", [esc(r.error.text) if r and r.error else "" for r in records]))
    budgets = [r.budget if r else None for r in records]
    if any(budgets):
        declared = [b.declared if b else {} for b in budgets]
        fields.append(("budget declared", [esc(_budget_text(d)) if d else "" for d in declared]))
        used_keys = list(dict.fromkeys(k for b in budgets if b for k in b.used))
        for key in used_keys:
            values = [b.used.get(key) if b else None for b in budgets]
            fields.append((f"used: {key.replace('_', ' ')}",
                           ["—" if v is None else _value(v) for v in values]))
        exceeded = [b.exceeded if b else [] for b in budgets]
        fields.append(("budget exceeded", [esc("; ".join(map(str, e))) if e else "no" for e in exceeded]))
    if any(r and r.search for r in records):
        fields.append(("search", [esc(r.search.text) if r and r.search else "" for r in records]))
    body = "".join(f"<tr><th scope=\"row\">{esc(name)}</th>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>"
                   for name, values in fields)
    return f"<table class=\"kv seeds-table\"><thead><tr><th></th>{heads}</tr></thead><tbody>{body}</tbody></table>"


def _budget_text(declared: Mapping) -> str:
    tier = f"tier {declared['tier']}: " if declared.get("tier") else ""
    return (f"{tier}{declared.get('steps')} steps, lr {declared.get('lr')}, batch {declared.get('batch_size')} x "
            f"{declared.get('grad_accum')}, {declared.get('schedule', 'constant')} schedule")


def _geffect_html(details: EntryDetails, images: Sequence[Image]) -> str:
    """The entry's G-effect summary: per seed the cumulative G-effect per data set and per block group, the top
    group and the sign pattern; the paragraph's facts (|e_u| at the last two steps, NPO's weight); its plots."""
    parts = []
    summaries = [(seed, r.geffect) for seed, _, r in details.runs
                 if r and r.ok and r.geffect is not None and r.geffect.measured]
    for seed, summary in summaries:
        rows = [(f"cumulative e({name})", esc(f"{float(v):.4g}")) for name, v in (summary.cumulative or {}).items()]
        for name, groups in (summary.cumulative_groups or {}).items():
            if name == "forget" and isinstance(groups, dict):
                rows.append(("cumulative e(forget) by group",
                             esc(", ".join(f"{g} {float(v):.4g}" for g, v in groups.items()))))
        if summary.top_group is not None:
            share = summary.top_group_share
            rows.append(("top group", esc(summary.top_group) + (f" ({float(share):.3f} of |e(forget)|)"
                                                                if share is not None else "")))
        if summary.sign_pattern:
            rows.append(("sign pattern", esc(", ".join(f"{k} {float(v):.3g}"
                                                       for k, v in summary.sign_pattern.items()))))
        if summary.steps:
            rows.append(("recorded steps", esc(", ".join(map(str, summary.steps)))))
        title = f"G-effect, seed {seed}" if len(summaries) > 1 else "G-effect"
        parts.append(f"<h4>{esc(title)}</h4>" + _kv(rows, "geffect"))
    facts = details.geffect
    extra = []
    tail = facts.get("e_u_tail")
    if tail and all(np.isfinite(tail.get("abs", [np.nan]))):
        (s0, s1), (a0, a1) = tail["steps"], tail["abs"]
        extra.append(("|e_u| at the last two recorded steps", esc(f"{a0:.4g} (step {s0}) → {a1:.4g} (step {s1})")))
    weight = facts.get("npo_weight")
    if weight:
        extra.append(("NPO mean weight w, first → last", esc(f"{weight['first']:.3f} → {weight['last']:.3f}")))
    if extra:
        parts.append(_kv(extra, "geffect"))
    for image in images:
        parts.append(figure_html(image))
    return "".join(parts)


def figure_html(image: Image) -> str:
    data = base64.b64encode(image.data).decode("ascii")
    return (f"<figure class=\"plot plot-{image.kind}\"><img alt=\"{esc(image.caption)}\" "
            f"src=\"data:image/png;base64,{data}\"><figcaption>{esc(image.caption)} "
            f"<span class=\"file\">({esc(image.name)})</span></figcaption></figure>\n")


def details_html(board: LeaderboardSpec, key: tuple[str, str], details: EntryDetails,
                  images: Sequence[Image], table: pd.DataFrame) -> str:
    task_label, label = key
    anchor = detail_id(board, task_label, label)
    rows = table[(table["task"] == task_label) & (table["method"] == label) & ~table["reference"].astype(bool)]
    status = str(rows["status"].iloc[0]) if len(rows) else "not on the table"
    seeds = str(rows["seeds"].iloc[0]) if len(rows) else ""
    facts = [("label", esc(label)), ("registered method", f"<code>{esc(details.method)}</code>"),
             ("task", esc(task_label)), ("status", esc(status)), ("seeds ok / planned", esc(seeds)),
             ("parameters on the board", esc(json.dumps(details.entry.params, sort_keys=True, ensure_ascii=False))
              if details.entry.params else "none (the method's defaults)")]
    if details.entry.plugin:
        facts.append(("plug-in file", f"<code>{esc(Path(details.entry.plugin).name)}</code>"))
    hparams = [(k, _value(details.hparams[k])) for k in sorted(details.hparams)]
    body = (_kv(facts, "facts") + "<h4>Hyper-parameters (defaults filled in)</h4>" +
            (_kv(hparams, "hparams") if hparams else "<p>none</p>") +
            "<h4>Runs</h4>" + _runs_html(details) + _geffect_html(details, images))
    summary = (f"<span class=\"label\">{esc(label)}</span> <code>{esc(details.method)}</code>"
               + (f" <span class=\"task\">{esc(task_label)}</span>" if len(board.tasks) > 1 else "")
               + f" <span class=\"status{'' if status == 'ok' else ' bad'}\">{esc(status)}</span>")
    return (f"<details class=\"method-detail\" id=\"{anchor}\"><summary>{summary}</summary>"
            f"<div class=\"detail-body\">{body}</div></details>\n")
