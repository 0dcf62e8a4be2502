"""A static, self-contained HTML view of a leaderboard: ``leaderboards/<name>/board.html``.

Built from the same table (``bench.leaderboard.build_table``) and stored records as ``board.md``, with the same
cell formatting (``value [low, high]`` with one seed, ``mean ± std`` with several) and direction arrows, and:

* one table per board table (the main ``columns``, then each ``tables:`` section), every column sortable by a
  click on its header (ascending, then descending; numbers compare as numbers, blank cells always last); reference
  rows (target, retain oracle) stay pinned above the method rows of their task;
* headers with the direction of better (↑ higher / ↓ lower / · none) and the metric's description as a tooltip;
* a detail view per method (a row click opens it in a modal; without JavaScript the same panels are the
  ``<details>`` elements under "Method details"): registered name, label, hyper-parameters (defaults filled in),
  per seed the run id, status and error, the budget declared and used, and the G-effect summary with the method's
  heat map and per-instance plot;
* the trade-off and G-effect plots embedded as ``data:image/png;base64`` URIs.

Inline CSS and JavaScript only: no CDN, no network. The page is a pure function of the board, the table and the
records (no timestamp), so the same records give the same bytes. Every text from a board file or a record is
escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.spec import LeaderboardSpec, MethodEntry, TaskEntry
from bench.store import Store, atomic_write_text

HTML_NAME = "board.html"
DIRECTION_TEXT = {"higher": "↑ higher is better", "lower": "↓ lower is better", "zero": "→0 closest to 0 is best",
                  "half": "→½ closest to 0.5 is best", "none": "· no direction of better"}


@dataclass
class EntryDetails:
    """What the detail view of one board entry (task, method entry) shows: its cells' specs and records."""

    task: TaskEntry
    entry: MethodEntry
    method: str  # registered name
    hparams: dict  # with defaults filled in (the run spec's)
    runs: list[tuple[int, str, dict | None]] = field(default_factory=list)  # (seed, run id, record or None)
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


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _inline(markdown: str) -> str:
    """Escaped HTML of a line of the board's markdown prose: ``**bold**`` and ```code``` only."""
    text = esc(markdown)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _paragraphs(markdown: str) -> str:
    return "".join(f"<p>{_inline(p.strip())}</p>\n" for p in markdown.split("\n\n") if p.strip())


def column_description(column: str) -> str:
    """One line saying what a column key measures, from the metric registry and the leaderboard's column kinds."""
    from bench.leaderboard import CALIBRATED, CONTROL_COLUMNS, GEFFECT, GEFFECT_COLUMNS
    from bench.registry import METRICS

    if column == "alpha":
        return ("α*: the calibrated mixing weight of θ(α) = (1 − α)·θ_target + α·θ_unlearned (arXiv 2406.09179); "
                "1: the raw endpoint already keeps the utility")
    if column == "tradeoff_auc":
        return "area under forget efficacy vs utility ratio over the probed α (arXiv 2406.09179)"
    if column in GEFFECT_COLUMNS:
        name = column.removeprefix(GEFFECT)
        if name.startswith("cumulative/"):
            data = name.rpartition("/")[2]
            note = "; negative: the forget risk rose (unlearning)" if data == "forget" else ""
            return f"cumulative G-effect on {data}: Σ lr·e({data})·steps over the recorded steps " \
                   f"(arXiv 2502.19301){note}"
        if name == "top_group_share":
            return "share of |cumulative e(forget)| in the most-affected block group (shallow/middle/deep thirds)"
        return "the most-affected block group of the cumulative e(forget)"
    if column in CONTROL_COLUMNS:
        return column
    if column.startswith("lm_eval/"):
        _, task, metric = column.split("/", 2)
        return f"lm-eval task {task}: {metric} of the model (real-world utility)"
    if column.startswith("relearn/"):
        metric = column.rpartition("/")[2]
        if metric.endswith("_before"):
            return f"relearning attack: forget {metric.removesuffix('_before')} on the held-back forget items " \
                   "before the attack"
        return f"relearning attack: forget {metric} on the held-back forget items after fine-tuning on a slice " \
               "of the forget set"
    raw = column.removeprefix(CALIBRATED)
    split, _, name = raw.rpartition("/")
    try:
        text = METRICS.get(name).description
    except LookupError:
        return column
    if split:
        text += f"; on the {split} split"
    if raw != column:
        text += "; of the calibrated model θ(α*) (reference rows: the raw value)"
    return text


def entry_details(board: LeaderboardSpec, store: Store, table: pd.DataFrame | None = None
                  ) -> dict[tuple[str, str], EntryDetails]:
    """Per (task label, method label): the board entry's registered method, hyper-parameters and, per seed, the
    record that represents the cell on the board (``bench.leaderboard.cell_record``)."""
    from bench.leaderboard import cell_record, plan

    facts = (table.attrs.get("geffect") or {}) if table is not None else {}
    out: dict[tuple[str, str], EntryDetails] = {}
    for cell in plan(board):
        key = (cell.task.label, cell.method.display)
        if key not in out:
            out[key] = EntryDetails(cell.task, cell.method, cell.spec.method, dict(cell.spec.hparams),
                                    geffect=(facts.get(cell.task.label) or {}).get(cell.method.display) or {})
        out[key].runs.append((cell.seed, cell.spec.run_id, cell_record(cell, board, store)))
    return out


def _number(value: object) -> str:
    """A sort key for ``data-sort``: the float's repr, or "" for a missing value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return repr(number) if math.isfinite(number) else ""


def _value(value: object) -> str:
    """Escaped text of a hyper-parameter or count: strings as they are, anything else as JSON (``1.0``, ``true``)."""
    if isinstance(value, str):
        return esc(value)
    return esc(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _cell_html(text: str) -> str:
    """A formatted cell (``bench.leaderboard._cell``) with its interval or spread in a quieter span."""
    match = re.match(r"^(\S+)(\s(?:\[|±).*)$", text)
    if not match:
        return esc(text)
    return f"{esc(match.group(1))}<span class=\"ci\">{esc(match.group(2))}</span>"


def _detail_id(board: LeaderboardSpec, task_label: str, method: str) -> str | None:
    tasks = [t.label for t in board.tasks]
    methods = [m.display for m in board.methods]
    if task_label not in tasks or method not in methods:
        return None
    return f"detail-{tasks.index(task_label)}-{methods.index(method)}"


def _table_html(board: LeaderboardSpec, table: pd.DataFrame, columns: Sequence[str], status: bool, name: str) -> str:
    from bench.leaderboard import ARROWS, TEXT_COLUMNS, _cell, column_direction
    from bench.metrics.base import IDEALS

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
        kind = "text" if column in TEXT_COLUMNS else "num"
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
            detail = None if reference else _detail_id(board, str(task_label), str(row["method"]))
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
                text = _cell(row, column)
                if column in TEXT_COLUMNS:
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


def _kv(rows: Sequence[tuple[str, str]], cls: str) -> str:
    body = "".join(f"<tr><th scope=\"row\">{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class=\"kv {cls}\">{body}</table>"


def _error_text(error: object) -> str:
    if not isinstance(error, dict):
        return "" if error is None else str(error)
    text = f"{error.get('type', 'error')}: {error.get('message', '')}"
    return text + (f" (step {error['step']})" if error.get("step") is not None else "")


def _runs_html(details: EntryDetails) -> str:
    """A table with one column per seed: run id, status, error, the budget declared and used, and the search."""
    runs = details.runs
    heads = "".join(f"<th scope=\"col\">seed {esc(seed)}</th>" for seed, _, _ in runs)
    fields: list[tuple[str, list[str]]] = [("run id", [f"<code>{esc(run_id)}</code>" for _, run_id, _ in runs])]
    records = [record for _, _, record in runs]
    fields.append(("status", [esc(r.get("status", "?")) if r else "not run" for r in records]))
    if any(r and r.get("error") for r in records):
        fields.append(("error", [esc(_error_text(r.get("error"))) if r else "" for r in records]))
    budgets = [(r or {}).get("budget") or {} for r in records]
    if any(budgets):
        declared = [b.get("declared") or {} for b in budgets]
        fields.append(("budget declared", [esc(_budget_text(d)) if d else "" for d in declared]))
        used_keys = list(dict.fromkeys(k for b in budgets for k in (b.get("used") or {})))
        for key in used_keys:
            values = [(b.get("used") or {}).get(key) for b in budgets]
            fields.append((f"used: {key.replace('_', ' ')}",
                           ["—" if v is None else _value(v) for v in values]))
        exceeded = [b.get("exceeded") or [] for b in budgets]
        fields.append(("budget exceeded", [esc("; ".join(map(str, e))) if e else "no" for e in exceeded]))
    if any(r and r.get("search") for r in records):
        fields.append(("search", [esc(_search_text(r.get("search"))) if r else "" for r in records]))
    body = "".join(f"<tr><th scope=\"row\">{esc(name)}</th>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>"
                   for name, values in fields)
    return f"<table class=\"kv seeds-table\"><thead><tr><th></th>{heads}</tr></thead><tbody>{body}</tbody></table>"


def _budget_text(declared: Mapping) -> str:
    tier = f"tier {declared['tier']}: " if declared.get("tier") else ""
    return (f"{tier}{declared.get('steps')} steps, lr {declared.get('lr')}, batch {declared.get('batch_size')} x "
            f"{declared.get('grad_accum')}, {declared.get('schedule', 'constant')} schedule")


def _search_text(search: object) -> str:
    if not isinstance(search, dict):
        return str(search)
    return f"selected trial {search.get('selected')} of {search.get('n_trials')} (search {search.get('search_id')})"


def _geffect_html(details: EntryDetails, images: Sequence[Image]) -> str:
    """The entry's G-effect summary: per seed the cumulative G-effect per data set and per block group, the top
    group and the sign pattern; the paragraph's facts (|e_u| at the last two steps, NPO's weight); its plots."""
    parts = []
    summaries = [(seed, r["geffect"]) for seed, _, r in details.runs
                 if r and r.get("status") == "ok" and r.get("geffect")]
    for seed, summary in summaries:
        cumulative = (summary.get("cumulative") or {}).items()
        rows = [(f"cumulative e({name})", esc(f"{float(v):.4g}")) for name, v in cumulative]
        for name, groups in (summary.get("cumulative_groups") or {}).items():
            if name == "forget" and isinstance(groups, dict):
                rows.append(("cumulative e(forget) by group",
                             esc(", ".join(f"{g} {float(v):.4g}" for g, v in groups.items()))))
        if summary.get("top_group") is not None:
            share = summary.get("top_group_share")
            rows.append(("top group", esc(summary["top_group"]) + (f" ({float(share):.3f} of |e(forget)|)"
                                                                   if share is not None else "")))
        if summary.get("sign_pattern"):
            rows.append(("sign pattern", esc(", ".join(f"{k} {float(v):.3g}"
                                                       for k, v in summary["sign_pattern"].items()))))
        if summary.get("steps"):
            rows.append(("recorded steps", esc(", ".join(map(str, summary["steps"])))))
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
        parts.append(_figure(image))
    return "".join(parts)


def _figure(image: Image) -> str:
    data = base64.b64encode(image.data).decode("ascii")
    return (f"<figure class=\"plot plot-{image.kind}\"><img alt=\"{esc(image.caption)}\" "
            f"src=\"data:image/png;base64,{data}\"><figcaption>{esc(image.caption)} "
            f"<span class=\"file\">({esc(image.name)})</span></figcaption></figure>\n")


def _details_html(board: LeaderboardSpec, key: tuple[str, str], details: EntryDetails,
                  images: Sequence[Image], table: pd.DataFrame) -> str:
    task_label, label = key
    detail_id = _detail_id(board, task_label, label)
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
    return (f"<details class=\"method-detail\" id=\"{detail_id}\"><summary>{summary}</summary>"
            f"<div class=\"detail-body\">{body}</div></details>\n")


CSS = """
:root{--fg:#1d2330;--muted:#5d6675;--line:#d9dde4;--ref:#f6f1e1;--hover:#eef4ff;--accent:#2457c5;--bad:#b3261e}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0 auto;
max-width:1500px;padding:1.2rem 1.5rem 4rem}
h1{font-size:1.6rem;margin:.2rem 0 .6rem}h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid var(--line)}
h4{margin:1rem 0 .3rem;font-size:.95rem}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f2f3f5;padding:0 .25em;border-radius:3px}
.facts-top{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.8rem 0}
.facts-top dt{font-weight:600;color:var(--muted)}.facts-top dd{margin:0}
.note{color:var(--muted);font-size:.92rem}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table.board{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
table.board th,table.board td{padding:.35rem .55rem;border-bottom:1px solid var(--line);text-align:left;
white-space:nowrap}
table.board thead th{position:sticky;top:0;background:#fafbfc;vertical-align:bottom;padding:0}
table.board thead button.sort{all:unset;cursor:pointer;display:block;padding:.45rem .55rem;font-weight:600}
table.board thead button.sort:focus-visible{outline:2px solid var(--accent)}
table.board thead th[aria-sort=ascending] button.sort::after{content:" \\25B2";color:var(--accent);font-size:.75em}
table.board thead th[aria-sort=descending] button.sort::after{content:" \\25BC";color:var(--accent);font-size:.75em}
.dir-higher{color:#1a7f37}.dir-lower{color:#b35c00}.dir-none{color:var(--muted)}
td.num{text-align:right}.ci{color:var(--muted);font-size:.85em}
tbody.refs tr{background:var(--ref);font-style:italic}tbody.refs{border-bottom:2px solid #c9b97f}
.badge{font-style:normal;font-size:.7rem;background:#c9b97f;color:#fff;border-radius:3px;padding:0 .35em;
margin-left:.3em;vertical-align:middle}
tbody.runs tr[data-detail]{cursor:pointer}tbody.runs tr[data-detail]:hover,tbody.runs tr:focus{background:var(--hover)}
th.method{font-weight:600}a.detail-link{color:var(--accent);text-decoration:none}
.status.bad,.bad{color:var(--bad)}
figure.plot{margin:1rem 0;max-width:1100px}figure.plot img{max-width:100%;height:auto;border:1px solid var(--line)}
figcaption{color:var(--muted);font-size:.9rem}.file{font-family:ui-monospace,monospace;font-size:.8rem}
details.method-detail{border:1px solid var(--line);border-radius:6px;margin:.4rem 0;padding:.3rem .8rem}
details.method-detail>summary{cursor:pointer;font-weight:600}details.method-detail .label{margin-right:.4em}
details.method-detail.flash{outline:3px solid var(--accent)}
table.kv{border-collapse:collapse;margin:.3rem 0}table.kv th,table.kv td{border:1px solid var(--line);
padding:.2rem .5rem;text-align:left;vertical-align:top}table.kv th{background:#fafbfc;font-weight:600}
dialog#detail-view{max-width:min(1000px,94vw);width:94vw;max-height:90vh;border:1px solid var(--line);
border-radius:8px;padding:0}dialog#detail-view::backdrop{background:rgba(20,25,35,.45)}
dialog#detail-view .head{display:flex;justify-content:space-between;align-items:center;position:sticky;top:0;
background:#fff;border-bottom:1px solid var(--line);padding:.6rem 1rem}
dialog#detail-view .head h3{margin:0;font-size:1.1rem}dialog#detail-view .content{padding:.4rem 1rem 1rem}
dialog#detail-view button.close{font-size:1rem;cursor:pointer}
"""

JS = """
(function () {
  "use strict";
  function sortKey(cell, kind) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent; }
    v = v.trim();
    if (v === "" || v === "\\u2014") { return null; }
    if (kind === "num") { var x = parseFloat(v); return isNaN(x) ? null : x; }
    return v;
  }
  function compare(a, b, kind) {
    if (kind === "num") { return a < b ? -1 : (a > b ? 1 : 0); }
    return a.localeCompare(b);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button.sort");
      if (!button) { return; }
      button.addEventListener("click", function (event) {
        event.stopPropagation();
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var kind = th.getAttribute("data-kind");
        Array.prototype.forEach.call(heads, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        Array.prototype.forEach.call(table.querySelectorAll("tbody.runs"), function (body) {
          var rows = Array.prototype.slice.call(body.rows);
          var keyed = rows.map(function (row, i) { return [sortKey(row.cells[col], kind), i, row]; });
          keyed.sort(function (p, q) {
            if (p[0] === null && q[0] === null) { return p[1] - q[1]; }
            if (p[0] === null) { return 1; }
            if (q[0] === null) { return -1; }
            var c = compare(p[0], q[0], kind);
            return (ascending ? c : -c) || p[1] - q[1];
          });
          keyed.forEach(function (k) { body.appendChild(k[2]); });
        });
      });
    });
  });
  var dialog = document.getElementById("detail-view");
  function openDetail(id) {
    var panel = document.getElementById(id);
    if (!panel) { return false; }
    if (dialog && typeof dialog.showModal === "function") {
      dialog.querySelector(".head h3").innerHTML = panel.querySelector("summary").innerHTML;
      var content = dialog.querySelector(".content");
      content.innerHTML = "";
      content.appendChild(panel.querySelector(".detail-body").cloneNode(true));
      dialog.setAttribute("data-detail", id);
      if (!dialog.open) { dialog.showModal(); }
      dialog.scrollTop = 0;
    } else {
      panel.open = true;
      panel.scrollIntoView();
    }
    return true;
  }
  Array.prototype.forEach.call(document.querySelectorAll("tbody.runs tr[data-detail]"), function (row) {
    var id = row.getAttribute("data-detail");
    row.addEventListener("click", function (event) { if (openDetail(id)) { event.preventDefault(); } });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); openDetail(id); }
    });
  });
  if (dialog) {
    dialog.querySelector("button.close").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (event) { if (event.target === dialog) { dialog.close(); } });
  }
})();
"""


def board_html(board: LeaderboardSpec, table: pd.DataFrame,
               details: Mapping[tuple[str, str], EntryDetails] | None = None,
               images: Sequence[Image] = (), release: str | None = None) -> str:
    """The page (see the module docstring) for ``table`` (``build_table``), the entries' ``details``
    (``entry_details``; None: no detail views) and the PNGs ``images`` to embed."""
    from bench.leaderboard import (
        GEFFECT_SIGN_LINE,
        _has_geffect,
        finding,
        geffect_paragraph,
        protocol_line,
        robustness_paragraph,
    )

    details = details or {}
    budget = board.budget
    tier = f"tier {budget.tier}: " if budget.tier else ""
    warmup = f", {budget.warmup_steps} warm-up" if budget.warmup_steps else ""
    budget_text = (f"{tier}AdamW, {budget.steps} steps, lr {budget.lr:g}, batch {budget.batch_size} x "
                   f"{budget.grad_accum}, {budget.schedule} schedule{warmup}")
    if budget.callback_every:
        budget_text += f", checkpoints every {budget.callback_every} steps"
    control = board.control
    control_text = control.kind if control.kind == "none" else \
        f"{control.kind}, τ = {control.tau:g}, utility {control.utility}, tolerance {control.tolerance:g}"
    tasks = ", ".join(t.label for t in board.tasks)
    from bench.leaderboard import _order_text

    order = _order_text(board)
    facts = [("board", esc(board.name)), ("version", esc(board.version))]
    if release:
        facts.append(("release", esc(release)))
    facts += [("tasks", esc(tasks)), ("budget", esc(budget_text)),
              ("seeds", esc(", ".join(map(str, board.seeds)))), ("control", esc(control_text)),
              ("sorted by", f"<code>{esc(board.sort.by)}</code> ({order})")]
    title = f"{board.name} leaderboard (v{board.version})"
    out = ["<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
           f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header>\n",
           f"<h1>{esc(title)}</h1>\n"]
    if board.description:
        out.append(f"<p class=\"description\">{_inline(board.description.strip())}</p>\n")
    out.append("<dl class=\"facts-top\">" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>\n")
    notes = (f"{protocol_line(board)}\n\n"
             "Click a column header to sort (again to reverse; blank cells last); reference rows (in italics) stay "
             "on top. ↑/↓: higher/lower is better, →0/→½: best at 0 / 0.5 (PrivLeak, membership AUC), · no "
             "direction; hover a header for what it measures. On the "
             "forget split less knowledge is better, except forget quality and truth ratio, which are best when "
             "they match the retain oracle. With several seeds a cell is mean ± std over seeds; with one seed, "
             "`value [low, high]` is the bootstrap 95% interval over items. Click a method row for its details.")
    if _has_geffect(board, table):
        notes += "\n\n" + GEFFECT_SIGN_LINE
    out.append(f"<div class=\"note\">{_paragraphs(notes)}</div>\n</header>\n<main>\n")
    out.append("<section id=\"main-table\">\n<h2>Leaderboard</h2>\n")
    out.append(_table_html(board, table, board.columns, status=True, name="main"))
    out.append(_paragraphs(finding(board, table)) + "</section>\n")
    for index, (section, columns) in enumerate(board.tables.items()):
        out.append(f"<section id=\"table-{index + 1}\">\n<h2>{esc(section)}</h2>\n")
        out.append(_table_html(board, table, columns, status=False, name=section) + "</section>\n")
    prose = "\n\n".join(p for p in (robustness_paragraph(board, table), geffect_paragraph(board, table)) if p)
    if prose:
        out.append(f"<section id=\"analysis\">\n<h2>Analysis</h2>\n{_paragraphs(prose)}</section>\n")
    per_method = {(i.task, i.method): [] for i in images if i.method is not None}
    for image in images:
        if image.method is not None:
            per_method[(image.task, image.method)].append(image)
    shown = [i for i in images if i.method is None or (i.task, i.method) not in details]
    if shown:
        out.append("<section id=\"plots\">\n<h2>Plots</h2>\n" + "".join(_figure(i) for i in shown) + "</section>\n")
    if details:
        out.append("<section id=\"methods\">\n<h2>Method details</h2>\n"
                   "<p class=\"note\">One panel per board entry (a row click opens it over the table).</p>\n")
        for key, entry in details.items():
            out.append(_details_html(board, key, entry, per_method.get(key, []), table))
        out.append("</section>\n")
    out.append("</main>\n<dialog id=\"detail-view\" aria-label=\"method details\"><div class=\"head\"><h3></h3>"
               "<button type=\"button\" class=\"close\" aria-label=\"close\">✕</button></div>"
               "<div class=\"content\"></div></dialog>\n")
    out.append(f"<script>{JS}</script>\n</body>\n</html>\n")
    return "".join(out)


def board_images(board: LeaderboardSpec, plot_names: Sequence[str], geffect_names: Sequence[str]) -> list[Image]:
    """The PNGs to embed, read from ``board.out_dir``: the trade-off plot(s) ``plot_names``, then the G-effect plots
    ``geffect_names`` (paths relative to ``board.out_dir``, as ``write_tables`` writes them), with captions."""
    from bench.geffect.plots import plot_index
    from bench.plots import PLOT_NAME, plot_paths

    out = board.out_dir
    images = []
    tradeoff = {path.name: task for task, path in plot_paths(board, out / PLOT_NAME).items()}
    for name in plot_names:
        task = tradeoff.get(name)
        label = task.label if task else ""
        caption = "Trade-off: forget efficacy vs utility ratio of θ(α)" + (f" ({label})" if label else "")
        images.append(Image(name, caption, (out / name).read_bytes(), "tradeoff", label))
    index = {str(path.relative_to(out)): key for key, path in plot_index(board).items()}
    captions = {"steps": "G-effect per recorded step: e(forget) and e(retain)",
                "heatmap": "Per-block heat map of e(forget) by step",
                "instances": "Per-instance PG-effects on forget vs retain at the last recorded step"}
    for name in geffect_names:
        key = index.get(name)
        if key is None:
            continue
        kind, task, method = key
        suffix = f" ({task.label})" if len(board.tasks) > 1 and kind == "steps" else ""
        caption = captions[kind] + (f": {method}" if method else "") + suffix
        images.append(Image(name, caption, (out / name).read_bytes(), kind, task.label, method))
    return images


def write_html(board: LeaderboardSpec, table: pd.DataFrame, store: Store, plot_names: Sequence[str],
               geffect_names: Sequence[str], release: str | None = None) -> Path:
    """Write ``<out_dir>/board.html`` atomically (see ``board_html``) and return its path."""
    path = board.out_dir / HTML_NAME
    images = board_images(board, plot_names, geffect_names)
    atomic_write_text(path, board_html(board, table, entry_details(board, store, table), images, release))
    return path
