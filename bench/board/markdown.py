"""A board as markdown (``board.md``): title, budget and protocol notes, the tables with direction arrows, the
findings and analysis paragraphs, and links to the plots."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from bench.board.analysis import robustness_paragraph
from bench.board.findings import finding, protocol_line
from bench.board.format import ARROWS, cell_text
from bench.board.geffect_findings import GEFFECT_SIGN_LINE, geffect_paragraph, has_geffect
from bench.board.geffect_plots import plot_index
from bench.board.plots import PLOT_NAME, plot_paths
from bench.board.table import order_text
from bench.grid.columns import column_direction
from bench.specs.board import LeaderboardSpec


def _geffect_links(board: LeaderboardSpec, names: Sequence[str]) -> str:
    """Markdown linking the G-effect plots ``names`` (relative to ``board.out_dir``): the per-step plot(s) shown,
    the per-method heat maps and per-instance scatters linked by label."""
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


def _render(table: pd.DataFrame, columns: Sequence[str], status: bool) -> str:
    """One github-markdown table of ``columns`` with direction arrows in the headers; reference rows in italics,
    methods tied with the best in bold; ``status`` adds the rank (when the table has one) and status columns."""
    ranked = status and "rank" in table
    headers = ["task", "method", "seeds", *(["rank"] if ranked else []),
               *[f"{c} {ARROWS[column_direction(c)]}" for c in columns]]
    body = []
    for _, row in table.iterrows():
        name = f"*{row['method']}*" if row["reference"] else row["method"]
        if not row["reference"] and row.get("tied_best") is True:
            name = f"**{name}**"
        rank = [row.get("rank") if isinstance(row.get("rank"), str) else ""] if ranked else []
        body.append([row["task"], name, row["seeds"], *rank, *[cell_text(row, c) for c in columns],
                     *([row["status"]] if status else [])])
    return tabulate(body, headers=headers + (["status"] if status else []), tablefmt="github",
                    disable_numparse=True) + "\n"


def _budget_note(board: LeaderboardSpec) -> str:
    """The paragraph under the title: the budget, the sort order, and how to read arrows, cells and ranks."""
    budget = board.budget
    tier = f"tier `{budget.tier}`: " if budget.tier else ""
    return (f"Budget ({tier}AdamW): {budget.steps} steps, lr {budget.lr:g}, "
            f"batch {budget.batch_size} x {budget.grad_accum}, "
            f"seeds {list(board.seeds)}. Sorted by `{board.sort.by}` ({order_text(board)}). Reference rows in "
            "italics. ↑/↓: higher/lower is better; →0/→½: best at 0 / 0.5 (MUSE PrivLeak: negative is "
            "under-unlearning, −100 a full leak, positive is over-unlearning; a membership AUC below 0.5 is "
            "over-unlearning, itself a leak); on the forget split less knowledge is "
            "better, except forget quality and truth ratio, which are best when they match the retain oracle. "
            "A seed is a replicate of the whole experiment: its own target, retain oracle and unlearning order. "
            "A cell is `mean [low, high]`: the mean over seeds and a 95% interval from a hierarchical bootstrap "
            "(seeds drawn with replacement, then one shared draw of the evaluated items; "
            "`bench/board/seedstats.py`), so "
            "it covers training noise and item sampling (also in `board.csv` as `<column> ci_low`, `<column> "
            "ci_high`, with `<column> std` over seeds); a column without per-item values (lm-eval, relearning) "
            "has seed variance only, or with one seed `± std` is absent. `rank`: the 95% interval of the row's "
            f"rank by `{board.sort.by}` over the same draws; **bold** methods are not significantly different "
            "from the best row (the paired bootstrap interval of the difference contains 0).\n\n")


def _preamble(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """Title (and release line), description, budget note, control protocol and, where the board has G-effect
    columns or data, the G-effect sign convention."""
    title = f"# {board.name} leaderboard (v{board.version})\n\n"
    if table.attrs.get("release"):  # set by write_tables: the release these records are (bench.release)
        title += f"{table.attrs['release']}\n\n"
    description = f"{board.description.strip()}\n\n" if board.description else ""
    protocol = protocol_line(board) + "\n\n"
    if has_geffect(board, table):
        protocol += GEFFECT_SIGN_LINE + "\n\n"
    return title + description + _budget_note(board) + protocol


def to_markdown(board: LeaderboardSpec, table: pd.DataFrame, plots: Sequence[str] | None = None,
                geffect_plots: Sequence[str] | None = None) -> str:
    """Markdown with direction arrows in the headers (↑ higher is better, ↓ lower is better, →0/→½ best at that
    value, · no direction), the
    control protocol, the G-effect sign convention (when the board has G-effect columns or data), the "Finding"
    and "G-effect" paragraphs and links to the trade-off and G-effect plots.

    ``plots``: file names (relative to ``board.out_dir``) of the trade-off plots to link; None links those of
    ``bench.board.plots.plot_paths`` that exist. ``geffect_plots``: the same for the G-effect plots (``geffect/...``);
    None links those of ``bench.board.geffect_plots.plot_index`` that exist.
    """
    if plots is None:
        plots = [p.name for p in plot_paths(board, board.out_dir / PLOT_NAME).values() if p.exists()]
    if geffect_plots is None:
        geffect_plots = [str(p.relative_to(board.out_dir)) for p in plot_index(board).values() if p.exists()]
    markdown = _preamble(board, table) + _render(table, board.columns, status=True)
    markdown += "\n" + finding(board, table) + "\n"
    for title, columns in board.tables.items():
        markdown += f"\n## {title}\n\n" + _render(table, columns, status=False)
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
