"""A static, self-contained HTML view of a leaderboard: ``leaderboards/<name>/board.html``.

Built from the same table (``bench.board.table.build_table``) and stored records as ``board.md``, with the same
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

The markup is jinja2 templates (``bench/board/templates``, autoescaped), the CSS and JavaScript static files
(``bench/board/static``) inlined into the page: no CDN, no network. The page is a pure function of the board, the
table and the records (no timestamp), so the same records give the same bytes. Every text from a board file or a
record is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from bench.board.analysis import robustness_paragraph
from bench.board.findings import finding, protocol_line
from bench.board.geffect_findings import GEFFECT_SIGN_LINE, geffect_paragraph, has_geffect
from bench.board.geffect_plots import plot_index
from bench.board.html_details import EntryDetails, Image, details_html, entry_details
from bench.board.html_tables import table_html
from bench.board.plots import PLOT_NAME, plot_paths
from bench.board.render import render, static_text
from bench.board.table import order_text
from bench.grid.cells import BoardRecords
from bench.runtime.store import Store, atomic_write_text
from bench.specs.board import LeaderboardSpec

HTML_NAME = "board.html"


NOTES = ("Click a column header to sort (again to reverse; blank cells last); reference rows (in italics) stay on "
         "top. ↑/↓: higher/lower is better, →0/→½: best at 0 / 0.5 (PrivLeak, membership AUC), · no direction; hover "
         "a header for what it measures. On the forget split less knowledge is better, except forget quality and "
         "truth ratio, which are best when they match the retain oracle. With several seeds a cell is mean ± std "
         "over seeds; with one seed, `value [low, high]` is the bootstrap 95% interval over items. Click a method "
         "row for its details.")


def _facts(board: LeaderboardSpec, release: str | None) -> list[tuple[str, str]]:
    """The page's facts before "sorted by": board, version, release, tasks, budget, seeds, control."""
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
    facts = [("board", board.name), ("version", board.version)]
    if release:
        facts.append(("release", release))
    return facts + [("tasks", ", ".join(t.label for t in board.tasks)), ("budget", budget_text),
                    ("seeds", ", ".join(map(str, board.seeds))), ("control", control_text)]


def board_html(board: LeaderboardSpec, table: pd.DataFrame,
               details: Mapping[tuple[str, str], EntryDetails] | None = None,
               images: Sequence[Image] = (), release: str | None = None) -> str:
    """The page (see the module docstring; markup in ``templates/board.html.j2``) for ``table`` (``build_table``),
    the entries' ``details`` (``entry_details``; None: no detail views) and the PNGs ``images`` to embed."""
    details = details or {}
    notes = f"{protocol_line(board)}\n\n{NOTES}"
    if has_geffect(board, table):
        notes += "\n\n" + GEFFECT_SIGN_LINE
    tables = [(section, table_html(board, table, columns, status=False, name=section))
              for section, columns in board.tables.items()]
    analysis = "\n\n".join(p for p in (robustness_paragraph(board, table), geffect_paragraph(board, table)) if p)
    per_method: dict[tuple[str, str | None], list[Image]] = {(i.task, i.method): [] for i in images
                                                                  if i.method is not None}
    for image in images:
        if image.method is not None:
            per_method[(image.task, image.method)].append(image)
    panels = [details_html(board, key, entry, per_method.get(key, []), table) for key, entry in details.items()]
    return str(render("board.html.j2", title=f"{board.name} leaderboard (v{board.version})",
                      css=static_text("board.css"), js=static_text("board.js"),
                      description=board.description.strip() if board.description else None,
                      facts=_facts(board, release), sort_by=board.sort.by, order=order_text(board), notes=notes,
                      main_table=table_html(board, table, board.columns, status=True, name="main"),
                      finding=finding(board, table), tables=tables, analysis=analysis,
                      figures=[i for i in images if i.method is None or (i.task, i.method) not in details],
                      panels=panels))


def board_images(board: LeaderboardSpec, plot_names: Sequence[str], geffect_names: Sequence[str]) -> list[Image]:
    """The PNGs to embed, read from ``board.out_dir``: the trade-off plot(s) ``plot_names``, then the G-effect plots
    ``geffect_names`` (paths relative to ``board.out_dir``, as ``write_tables`` writes them), with captions."""
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
               geffect_names: Sequence[str], release: str | None = None, records: BoardRecords | None = None
               ) -> Path:
    """Write ``<out_dir>/board.html`` atomically (see ``board_html``) and return its path."""
    path = board.out_dir / HTML_NAME
    images = board_images(board, plot_names, geffect_names)
    details = entry_details(board, store, table, records)
    atomic_write_text(path, board_html(board, table, details, images, release))
    return path
