"""Trade-off plots of a leaderboard (arXiv 2406.09179, "Unlearning with Control"), read from stored records only.

For each task, every method's trade-off points (``control.tradeoff.points`` of its ``ok`` run records: the mixed
models theta(alpha) = (1 - alpha) theta_target + alpha theta_unlearned probed during calibration) are drawn as
forget efficacy ``1 - ES_forget(alpha) / ES_forget(target)`` against the utility ratio ``U(alpha) / U(target)``:
one line per method (one per seed with several seeds, in the method's colour), the calibrated point theta(alpha*)
as a star, and a dashed vertical line at tau. The output is deterministic: a fixed figure size and dpi, matplotlib's
default style whatever the local matplotlibrc, and no software or date in the PNG metadata.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.style
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.board.format import UTILITY_NAMES
from bench.grid.cells import BoardRecords, read_board
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec, TaskEntry

PLOT_NAME = "tradeoff.png"
FIGSIZE = (10.0, 6.0)  # inches; the right part of the figure holds the legend
DPI = 110
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


@dataclass
class Series:
    """One method's trade-off data on one task: a curve (x, y per probed alpha) and a calibrated point per seed."""

    method: str
    index: int  # the entry's position on the board: fixes its colour and marker on every task's plot
    curves: list[tuple[list[float], list[float]]] = field(default_factory=list)
    calibrated: list[tuple[float, float]] = field(default_factory=list)
    tau: float = float("nan")


def plot_paths(board: LeaderboardSpec, path: Path) -> dict[TaskEntry, Path]:
    """Where each task's plot goes: ``path`` itself for a one-task board, else ``<stem>-<task>-<split><suffix>``
    next to it (e.g. ``tradeoff-synthetic-forget10.png``)."""
    path = Path(path)
    if len(board.tasks) == 1:
        return {board.tasks[0]: path}

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-")

    return {t: path.with_name(f"{path.stem}-{slug(t.task)}-{slug(t.split)}{path.suffix}") for t in board.tasks}


def _xy(utility: float, forget_es: float, u_target: float, es_target: float) -> tuple[float, float]:
    return utility / u_target, 1.0 - forget_es / es_target


def tradeoff_series(board: LeaderboardSpec, store: Store, records: BoardRecords | None = None
                    ) -> dict[TaskEntry, list[Series]]:
    """Per task, the methods that have trade-off data, in board order (methods without it are skipped); each cell
    read from the record that represents it on the board (the selected trial on a board with a search)."""
    out: dict[TaskEntry, list[Series]] = {task: [] for task in board.tasks}
    for task, index, entry, ok in (records or read_board(board, store)).ok_entries():
        item = Series(entry.display, index)
        for _seed, record in ok:
            control = record.control
            if control is None or control.tradeoff is None:
                continue
            points, calibration = control.tradeoff.points, control.calibration
            u_target, es_target = control.utility_target, control.es_target
            if not points or not u_target or not es_target or u_target <= 0 or es_target <= 0:
                continue
            points = sorted(points, key=lambda p: p["alpha"])
            xy = [_xy(p["utility"], p["forget_es"], u_target, es_target) for p in points]
            item.curves.append(([x for x, _ in xy], [y for _, y in xy]))
            if calibration is not None and calibration.alpha is not None:
                item.calibrated.append(_xy(calibration.u_alpha, calibration.forget_es_alpha, u_target, es_target))
            tau = None if calibration is None else calibration.tau
            item.tau = float(board.control.tau if tau is None else tau)
        if item.curves:
            out[task].append(item)
    return out


def save_png(fig, path: Path) -> None:
    """Render ``fig`` to PNG at ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI, metadata={"Software": None})
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tradeoff_plot(board: LeaderboardSpec, store: Store, path: Path, records: BoardRecords | None = None
                  ) -> list[Path]:
    """Draw the forget-efficacy vs utility trade-off of every method, one PNG per task (see ``plot_paths``).

    Tasks where no method has trade-off data get no plot. Axes are shared: the same limits on every task's plot.
    Returns the written paths, in task order.
    """
    data = tradeoff_series(board, store, records)
    targets = plot_paths(board, Path(path))
    xs = [x for items in data.values() for s in items for c in s.curves for x in c[0]]
    ys = [y for items in data.values() for s in items for c in s.curves for y in c[1]]
    xlim = (min([-0.02, *(x - 0.02 for x in xs)]), max([1.05, *(x + 0.02 for x in xs)]))
    ylim = (min([-0.02, *(y - 0.02 for y in ys)]), max([1.05, *(y + 0.02 for y in ys)]))
    colours = colormaps["tab20"]
    written = []
    for task, items in data.items():
        if not items:
            continue
        with matplotlib.style.context("default"):
            fig = Figure(figsize=FIGSIZE, dpi=DPI)
            FigureCanvasAgg(fig)
            ax = fig.add_axes((0.08, 0.1, 0.64, 0.8))
            for item in items:
                colour = colours(item.index % 20)
                marker = MARKERS[item.index % len(MARKERS)]
                for k, (x, y) in enumerate(item.curves):
                    ax.plot(x, y, color=colour, marker=marker, markersize=4, linewidth=1.2,
                            label=item.method if k == 0 else "_nolegend_")
                for x, y in item.calibrated:
                    ax.plot([x], [y], linestyle="none", marker="*", markersize=14, color=colour,
                            markeredgecolor="black", markeredgewidth=0.8, zorder=5, label="_nolegend_")
            taus = sorted({item.tau for item in items if item.tau == item.tau}) or [board.control.tau]
            for tau in taus:
                ax.axvline(tau, color="0.3", linestyle="--", linewidth=1.0, label=f"τ = {tau:g}")
            handles, labels = ax.get_legend_handles_labels()
            handles.append(Line2D([], [], linestyle="none", marker="*", markersize=12, color="white",
                                  markeredgecolor="black"))
            labels.append("calibrated θ(α*)")
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
                      borderaxespad=0.0)
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            ax.grid(True, alpha=0.3)
            ax.set_xlabel(f"utility ratio U / U(target)   (U = {UTILITY_NAMES[board.control.utility]})")
            ax.set_ylabel("forget efficacy 1 − ES_forget / ES_forget(target)")
            ax.set_title(f"{task.label}: trade-off of θ(α) = (1 − α)·θ_target + α·θ_unlearned",
                         fontsize=10)
            save_png(fig, targets[task])
        written.append(targets[task])
    return written
