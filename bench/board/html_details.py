"""The detail view of one board entry in the HTML board: registered method, where an outside method came from
(class version, package and version or plug-in file, a submitted entry's paper, authors and BibTeX),
hyper-parameters, per seed the run id, status, error, budget declared and used, and the G-effect summary with the
method's plots. The markup is the template ``bench/board/templates/details.html.j2``; this module computes what it
shows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup

from bench.board.html_tables import detail_id
from bench.board.render import render
from bench.grid.cells import BoardRecords, read_board
from bench.run.origin import board_origins
from bench.runtime.records import RunRecord
from bench.runtime.sections import MethodOrigin
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
    origin: MethodOrigin | None = None  # an outside method's provenance and citation (``bench.run.origin``)


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
    record that represents the cell on the board (``bench.grid.cells.cell_record``), and the method's origin
    (``bench.run.origin.board_origins``)."""
    facts = (table.attrs.get("geffect") or {}) if table is not None else {}
    records = records or read_board(board, store)
    origins = board_origins(board, ((cell.method, record) for cell, record in zip(records.cells, records.records)))
    out: dict[tuple[str, str], EntryDetails] = {}
    for cell, record in zip(records.cells, records.records):
        key = (cell.task.label, cell.method.display)
        if key not in out:
            out[key] = EntryDetails(cell.task, cell.method, cell.spec.method, dict(cell.spec.hparams),
                                    geffect=(facts.get(cell.task.label) or {}).get(cell.method.display) or {},
                                    origin=origins.get(cell.method.display))
        out[key].runs.append((cell.seed, cell.spec.run_id, record))
    return out


NO_PARAMS = Markup("none (the method's defaults)")  # page text with an apostrophe the pages never escaped


def _value(value: object) -> str:
    """Text of a hyper-parameter or count: strings as they are, anything else as JSON (``1.0``, ``true``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _run_fields(details: EntryDetails) -> list[tuple[str, list[str]]]:
    """The rows of the seeds table, one value per seed: run id, status, error, the budget declared and used, and
    the search."""
    runs = details.runs
    fields: list[tuple[str, list[str]]] = [("run id", [run_id for _, run_id, _ in runs])]
    records = [record for _, _, record in runs]
    fields.append(("status", [r.status if r else "not run" for r in records]))
    if any(r and r.error for r in records):
        fields.append(("error", [r.error.text if r and r.error else "" for r in records]))
    budgets = [r.budget if r else None for r in records]
    if any(budgets):
        declared = [b.declared if b else {} for b in budgets]
        fields.append(("budget declared", [_budget_text(d) if d else "" for d in declared]))
        used_keys = list(dict.fromkeys(k for b in budgets if b for k in b.used))
        for key in used_keys:
            values = [b.used.get(key) if b else None for b in budgets]
            fields.append((f"used: {key.replace('_', ' ')}", ["—" if v is None else _value(v) for v in values]))
        exceeded = [b.exceeded if b else [] for b in budgets]
        fields.append(("budget exceeded", ["; ".join(map(str, e)) if e else "no" for e in exceeded]))
    if any(r and r.search for r in records):
        fields.append(("search", [r.search.text if r and r.search else "" for r in records]))
    return fields


def _origin_facts(origin: MethodOrigin | None) -> list[tuple[str, str]]:
    """The fact rows of an outside method's origin: class version, package and version or plug-in file, and the
    submitted entry's file, paper and authors (names only: the page is shared)."""
    if origin is None:
        return []
    rows = [("method version", origin.version)] if origin.version else []
    if origin.package:
        rows.append(("package", f"{origin.package} {origin.package_version or ''}".rstrip()))
    candidates = (("plug-in file", origin.plugin), ("submitted entry", origin.entry), ("paper", origin.paper),
                  ("authors", ", ".join(origin.authors or ())))
    return rows + [(name, value) for name, value in candidates if value]


def _budget_text(declared: Mapping) -> str:
    tier = f"tier {declared['tier']}: " if declared.get("tier") else ""
    return (f"{tier}{declared.get('steps')} steps, lr {declared.get('lr')}, batch {declared.get('batch_size')} x "
            f"{declared.get('grad_accum')}, {declared.get('schedule', 'constant')} schedule")


def _geffect_summaries(details: EntryDetails) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per seed with a G-effect summary, a title and its rows: the cumulative G-effect per data set and per block
    group, the measured change of each risk against its two first-order predictions (records that have them), the
    top group, the sign pattern and the recorded steps."""
    out = []
    summaries = [(seed, r.geffect) for seed, _, r in details.runs
                 if r and r.ok and r.geffect is not None and r.geffect.measured]
    for seed, summary in summaries:
        rows = [(f"cumulative e({name})", f"{float(v):.4g}") for name, v in (summary.cumulative or {}).items()]
        for name, groups in (summary.cumulative_groups or {}).items():
            if name == "forget" and isinstance(groups, dict):
                text = ", ".join(f"{g} {float(v):.4g}" for g, v in groups.items())
                rows.append(("cumulative e(forget) by group", text))
        rows.extend(_change_rows(summary))
        if summary.top_group is not None:
            share = summary.top_group_share
            rows.append(("top group", str(summary.top_group) + (f" ({float(share):.3f} of |e(forget)|)"
                                                                if share is not None else "")))
        if summary.sign_pattern:
            rows.append(("sign pattern", ", ".join(f"{k} {float(v):.3g}" for k, v in summary.sign_pattern.items())))
        if summary.steps:
            rows.append(("recorded steps", ", ".join(map(str, summary.steps))))
        out.append((f"G-effect, seed {seed}" if len(summaries) > 1 else "G-effect", rows))
    return out


def _change_rows(summary) -> list[tuple[str, str]]:
    """Per data set with the step changes: the measured change of R(D), the realised first-order change along the
    applied update and the paper's −cumulative e(D), with the relative errors of the two predictions."""
    rows = []
    for name, measured in (summary.measured_change or {}).items():
        realised = (summary.realised_change or {}).get(name)
        paper = (summary.cumulative or {}).get(name)
        if realised is None or paper is None:
            continue
        errors = (summary.agreement or {}).get(name) or {}
        text = f"measured {float(measured):+.4g}; realised {float(realised):+.4g}; paper {-float(paper):+.4g}"
        if "realised_error" in errors and "paper_error" in errors:
            text += (f" (relative errors: realised {float(errors['realised_error']):.3g}, paper "
                     f"{float(errors['paper_error']):.3g})")
        rows.append((f"change of R({name})", text))
    return rows


def _geffect_facts(details: EntryDetails) -> list[tuple[str, str]]:
    """The G-effect paragraph's facts of the entry: |e_u| at the last two steps, NPO's mean weight."""
    facts = details.geffect
    rows = []
    tail = facts.get("e_u_tail")
    if tail and all(np.isfinite(tail.get("abs", [np.nan]))):
        (s0, s1), (a0, a1) = tail["steps"], tail["abs"]
        rows.append(("|e_u| at the last two recorded steps", f"{a0:.4g} (step {s0}) → {a1:.4g} (step {s1})"))
    weight = facts.get("npo_weight")
    if weight:
        rows.append(("NPO mean weight w, first → last", f"{weight['first']:.3f} → {weight['last']:.3f}"))
    return rows


def details_html(board: LeaderboardSpec, key: tuple[str, str], details: EntryDetails,
                  images: Sequence[Image], table: pd.DataFrame) -> str:
    """The detail panel of board entry ``key`` = (task label, method label) (``templates/details.html.j2``)."""
    task_label, label = key
    rows = table[(table["task"] == task_label) & (table["method"] == label) & ~table["reference"].astype(bool)]
    status = str(rows["status"].iloc[0]) if len(rows) else "not on the table"
    seeds = str(rows["seeds"].iloc[0]) if len(rows) else ""
    params = details.entry.params
    facts = [("label", label), ("registered method", details.method), ("task", task_label), ("status", status),
             ("seeds ok / planned", seeds), ("parameters on the board",
                                             json.dumps(params, sort_keys=True, ensure_ascii=False) if params
                                             else NO_PARAMS)]
    if details.entry.plugin and not (details.origin and details.origin.plugin):
        facts.append(("plug-in file", Path(details.entry.plugin).name))
    facts += _origin_facts(details.origin)
    return render("details.html.j2", anchor=detail_id(board, task_label, label), label=label, method=details.method,
                  task=task_label if len(board.tasks) > 1 else None, status=status, facts=facts,
                  hparams=[(k, _value(details.hparams[k])) for k in sorted(details.hparams)],
                  seeds=[seed for seed, _, _ in details.runs], fields=_run_fields(details),
                  geffect=_geffect_summaries(details), geffect_facts=_geffect_facts(details), images=images,
                  citation=details.origin.citation if details.origin else None)
