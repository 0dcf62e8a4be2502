"""G-effect plots of a leaderboard (arXiv 2502.19301), read from the stored run folders only.

For every board cell with G-effect data (``geffect.jsonl`` in its run folder: one measurement per recorded step,
see ``bench.geffect.callback``), written into ``<board out_dir>/geffect/``:

* ``geffect_steps.png``: e_u = e(forget) and e_r = e(retain) per recorded step for every method on shared axes (two
  panels, symmetric-log y scale, a zero line; negative e(forget) = the forget risk rises = unlearning);
* ``geffect_heatmap-<label-slug>.png`` per method: the forget G-effect per parameter block (rows: embeddings,
  layer0.., final_norm, head) and recorded step (columns), diverging colours centred at 0 on a symmetric log norm;
* ``geffect_instances-<label-slug>.png`` per method: per forget item, the PG-effect on D = forget (x) against
  D = retain (y) at the last recorded step, with zero lines.

A multi-task board gets ``-<task>-<split>`` before ``.png``. The heat map and the scatter show a method's first
seed with data; the per-step plot draws every seed (one line each, in the method's colour). The output is
deterministic: fixed figure sizes and dpi, matplotlib's default style, no software or date in the PNG metadata,
each file written atomically with mode 0644 (``bench.board.plots.save_png``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.style
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bench.board.plots import DPI, MARKERS, save_png
from bench.geffect.compute import block_key
from bench.grid.cells import BoardRecords, read_board
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec, TaskEntry, label_slug

FOLDER = "geffect"
STEPS_NAME = "geffect_steps"
HEATMAP_NAME = "geffect_heatmap"
INSTANCES_NAME = "geffect_instances"
STEPS_FIGSIZE = (10.0, 7.0)
HEATMAP_FIGSIZE = (7.5, 4.8)
INSTANCES_FIGSIZE = (6.5, 5.5)
SIGN = "e(D) = ∇R(D)ᵀ∇L_u; e(forget) < 0: forget risk rises (unlearning); e(retain) ≥ 0 wanted"

PlotKey = tuple[str, TaskEntry, str | None]  # (kind: steps | heatmap | instances, task, method label or None)


def _slugs(board: LeaderboardSpec) -> dict[str, str]:
    """Label -> a slug unique on the board (a clash gets ``-2``, ``-3``, ... in board order)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for entry in board.methods:
        base = label_slug(entry.display)
        slug, k = base, 2
        while slug in taken:
            slug, k = f"{base}-{k}", k + 1
        taken.add(slug)
        out[entry.display] = slug
    return out


def plot_index(board: LeaderboardSpec) -> dict[PlotKey, Path]:
    """Every G-effect plot the board can have, in link order (per task: the per-step plot, the heat maps, then the
    per-instance scatters, methods in board order), whether written or not."""
    folder = board.out_dir / FOLDER
    slugs = _slugs(board)

    def suffix(task: TaskEntry) -> str:
        if len(board.tasks) == 1:
            return ""
        return "-" + "-".join(re.sub(r"[^A-Za-z0-9_.]+", "-", t).strip("-") for t in (task.task, task.split))

    index: dict[PlotKey, Path] = {}
    for task in board.tasks:
        index[("steps", task, None)] = folder / f"{STEPS_NAME}{suffix(task)}.png"
        for kind, name in (("heatmap", HEATMAP_NAME), ("instances", INSTANCES_NAME)):
            for entry in board.methods:
                index[(kind, task, entry.display)] = folder / f"{name}-{slugs[entry.display]}{suffix(task)}.png"
    return index


@dataclass
class GSeries:
    """One method's G-effect measurements on one task: one list of measurements per seed with data."""

    method: str
    index: int  # the entry's position on the board: fixes its colour and marker
    runs: list[tuple[int, list[dict]]] = field(default_factory=list)  # (seed, measurements in step order)


def geffect_series(board: LeaderboardSpec, store: Store, records: BoardRecords | None = None
                   ) -> dict[TaskEntry, list[GSeries]]:
    """Per task, the methods whose ``ok`` cell records have G-effect data, in board order (others are skipped).
    Each cell's record is the one that represents it on the board (``bench.grid.cells.cell_record``)."""
    out: dict[TaskEntry, list[GSeries]] = {task: [] for task in board.tasks}
    records = records or read_board(board, store)
    for task, index, entry, ok in records.ok_entries():
        item = GSeries(entry.display, index)
        for seed, record in ok:
            measurements = records.measurements(record)
            if measurements:
                item.runs.append((seed, measurements))
        if item.runs:
            out[task].append(item)
    return out


def _linthresh(values: list[float]) -> float:
    """Linear range of a symmetric log scale: the power of ten at or below the smallest nonzero |value|, but
    within 6 decades of the largest (1 when every value is 0)."""
    sizes = [abs(v) for v in values if v and math.isfinite(v)]
    if not sizes:
        return 1.0
    low = max(min(sizes), max(sizes) * 1e-6)
    return 10.0 ** math.floor(math.log10(low))


def _figure(figsize: tuple[float, float]):
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _steps_plot(task: TaskEntry, items: list[GSeries], path: Path, title_task: str) -> None:
    colours = colormaps["tab20"]
    fig = _figure(STEPS_FIGSIZE)
    top = fig.add_axes((0.1, 0.53, 0.62, 0.36))
    bottom = fig.add_axes((0.1, 0.09, 0.62, 0.36), sharex=top)
    for ax, data_set, name in ((top, "forget", "e_u = e(forget)"), (bottom, "retain", "e_r = e(retain)")):
        values = []
        for item in items:
            colour, marker = colours(item.index % 20), MARKERS[item.index % len(MARKERS)]
            for k, (_, measured) in enumerate(item.runs):
                points = [(m["step"], m["total"][data_set]) for m in measured if data_set in m.get("total", {})]
                if not points:
                    continue
                values += [v for _, v in points]
                ax.plot([s for s, _ in points], [v for _, v in points], color=colour, marker=marker, markersize=4,
                        linewidth=1.2, label=item.method if k == 0 else "_nolegend_")
        ax.set_yscale("symlog", linthresh=_linthresh(values))
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.grid(True, alpha=0.3)
        ax.set_ylabel(f"{name}   (symlog)")

    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_xlabel("optimizer step (0: before the first update)")
    top.tick_params(labelbottom=False)
    handles, labels = top.get_legend_handles_labels()
    top.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
               borderaxespad=0.0)
    fig.suptitle(f"{title_task}G-effect per recorded step\n{SIGN}", fontsize=10)
    save_png(fig, path)


def _heatmap_plot(item: GSeries, path: Path, title_task: str) -> bool:
    seed, measured = item.runs[0]
    blocks = sorted({b for m in measured for b in (m.get("blocks") or {}).get("forget", {})}, key=block_key)
    if not blocks:
        return False
    steps = [m["step"] for m in measured]
    grid = np.full((len(blocks), len(steps)), np.nan)
    for j, m in enumerate(measured):
        for i, block in enumerate(blocks):
            value = (m.get("blocks") or {}).get("forget", {}).get(block)
            if value is not None:
                grid[i, j] = value
    finite = [float(v) for v in grid[np.isfinite(grid)]]
    vmax = max([abs(v) for v in finite] or [1.0]) or 1.0
    norm = SymLogNorm(linthresh=_linthresh(finite), vmin=-vmax, vmax=vmax, base=10)
    fig = _figure(HEATMAP_FIGSIZE)
    ax = fig.add_axes((0.15, 0.13, 0.62, 0.7))
    image = ax.imshow(grid, aspect="auto", cmap="RdBu_r", norm=norm, interpolation="nearest")
    ax.set_xticks(range(len(steps)), [str(s) for s in steps])
    ax.set_yticks(range(len(blocks)), blocks)
    ax.set_xlabel("optimizer step")
    if len(blocks) * len(steps) <= 120:
        for i in range(len(blocks)):
            for j in range(len(steps)):
                if np.isfinite(grid[i, j]):
                    dark = abs(float(norm(grid[i, j])) - 0.5) > 0.3
                    ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", fontsize=6,
                            color="white" if dark else "black")
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    bar.set_label("e_block(forget)  (< 0: forget risk rises)", fontsize=8)
    ax.set_title(f"{title_task}{item.method} (seed {seed}): forget G-effect per block and step\n"
                 "blue < 0 = unlearning, red > 0; symmetric log colour scale", fontsize=9)
    save_png(fig, path)
    return True


def _instances_plot(item: GSeries, path: Path, title_task: str) -> bool:
    seed, measured = item.runs[0]
    last = measured[-1]
    per_instance = last.get("per_instance") or {}
    xs, ys = per_instance.get("forget") or [], per_instance.get("retain") or []
    if not xs or len(xs) != len(ys):
        return False

    fig = _figure(INSTANCES_FIGSIZE)
    ax = fig.add_axes((0.17, 0.12, 0.78, 0.7))
    ax.scatter(xs, ys, s=22, color=colormaps["tab20"](item.index % 20), edgecolors="black", linewidths=0.5,
               zorder=3)
    ax.set_xscale("symlog", linthresh=_linthresh(xs))
    ax.set_yscale("symlog", linthresh=_linthresh(ys))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("PG-effect on D = forget: ∇R(forget)ᵀ∇log p(s_i)   (symlog)")
    ax.set_ylabel("PG-effect on D = retain: ∇R(retain)ᵀ∇log p(s_i)   (symlog)")
    good = sum(x < 0 <= y for x, y in zip(xs, ys))
    ax.set_title(f"{title_task}{item.method} (seed {seed}): PG-effect per forget item s_i at step {last['step']}\n"
                 "descending log p(s_i): x < 0 raises the forget risk, y < 0 the retain risk\n"
                 f"{good} of {len(xs)} items with x < 0 ≤ y (unlearned without raising the retain risk)", fontsize=9)
    save_png(fig, path)
    return True


def geffect_plots(board: LeaderboardSpec, store: Store, prune: bool = True, records: BoardRecords | None = None
                  ) -> list[Path]:
    """Write every G-effect plot the board's records support into ``<out_dir>/geffect/`` (see the module
    docstring) and, with ``prune``, delete the plots of an earlier build that have no data now (``write_tables``
    prunes only a folder it rewrites from a store holding every cell). Cells without G-effect data are
    skipped; a task without any gets no per-step plot. Returns the written paths, in ``plot_index`` order."""
    index = plot_index(board)
    data = geffect_series(board, store, records)
    written: set[Path] = set()
    with matplotlib.style.context("default"):
        for task, items in data.items():
            if not items:
                continue
            title_task = f"{task.label}: " if len(board.tasks) > 1 else ""
            path = index[("steps", task, None)]
            _steps_plot(task, items, path, title_task)
            written.add(path)
            for item in items:
                path = index[("heatmap", task, item.method)]
                if _heatmap_plot(item, path, title_task):
                    written.add(path)
                path = index[("instances", task, item.method)]
                if _instances_plot(item, path, title_task):
                    written.add(path)
    folder = board.out_dir / FOLDER
    if prune and folder.is_dir():
        for stale in folder.glob("geffect_*.png"):
            if stale not in written:
                stale.unlink(missing_ok=True)  # a plot of an earlier build (a method left the board, or lost data)
    return [p for p in index.values() if p in written]
