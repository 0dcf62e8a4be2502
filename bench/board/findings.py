"""The written findings of a board, computed from its table: the control protocol line and the "Finding"
paragraph (how the order of methods by raw forget ES compares with the order at matched utility)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata

from bench.board.format import REFERENCE_LABELS, UTILITY_NAMES
from bench.board.seedstats import Ranking
from bench.board.table import ranking
from bench.grid.columns import column_direction, key_text
from bench.run.controller import UTILITY_METRIC
from bench.runtime.keys import CALIBRATED, RAW, MetricKey
from bench.specs.board import LeaderboardSpec


def protocol_line(board: LeaderboardSpec) -> str:
    """One line stating the board's control protocol (kind, tau, utility measure, tolerance)."""
    control = board.control
    utility = f"{UTILITY_NAMES[control.utility]} (`{UTILITY_METRIC[control.utility]}`)"
    if control.kind == "mixing":
        return ("Control (arXiv 2406.09179): each unlearned model is mixed with the target, "
                "θ(α) = (1 − α)·θ_target + α·θ_unlearned, at the largest α with U(θ(α)) ≥ τ·U(target): "
                f"τ = {control.tau:g}, U = {utility}, bisection tolerance {control.tolerance:g}. "
                "`calibrated/…` columns are the metrics of θ(α*) (on reference rows: their raw values); `alpha` is "
                "α*, higher is better (less mixing needed; 1: the raw endpoint already keeps the utility); "
                "`tradeoff_auc` is the area under forget efficacy vs utility ratio over the probed α, higher is "
                "better.")
    if control.kind == "early_stop":
        return (f"Control (arXiv 2406.09179): early stopping: training stops at the first checkpoint (every "
                f"{board.budget.callback_every} steps) with U < τ·U(target) and keeps the last passing weights: "
                f"τ = {control.tau:g}, U = {utility}. No mixing calibration, so `calibrated/…`, `alpha` and "
                "`tradeoff_auc` are blank.")
    return "Control: none (raw endpoints only), so `calibrated/…`, `alpha` and `tradeoff_auc` are blank."


def ga_label(board: LeaderboardSpec) -> str | None:
    """The board's plain gradient-ascent row: labelled ``GA``, else the ``ga`` entry without parameters."""
    entries = [m for m in board.methods if m.method == "ga" or m.display.lower() == "ga"]
    exact = [m for m in entries if m.display.lower() == "ga"]
    plain = [m for m in entries if m.method == "ga" and not m.params]
    pick = exact or plain or entries
    return pick[0].display if pick else None


def name_list(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _best_group(sig: Ranking | None, rows: pd.DataFrame, column: str) -> str:
    """"the best is X at v, significantly ahead of the rest" or "X at v is best, statistically tied with A, B"."""
    if sig is None:  # a table without stored draws (built by hand): the point order, with no significance claim
        best = rows.loc[rows[column].astype(float).idxmin() if column_direction(column) == "lower"
                        else rows[column].astype(float).idxmax()]
        return f"the best is {best['method']} at {float(best[column]):.3f} (no uncertainty stored: not tested)"
    value = float(rows.loc[rows["method"] == sig.best, column].iloc[0])
    others = [m for m in sig.tied if m != sig.best]
    if not others:
        return f"the best is {sig.best} at {value:.3f}, significantly ahead of every other method"
    return (f"{sig.best} has the best mean ({value:.3f}) but is not significantly better than "
            f"{name_list(others, limit=6)}")


def _strength(tau: float) -> str:
    size = abs(tau)
    if size < 0.1:
        return "essentially unrelated"
    word = "strongly" if size >= 0.7 else "moderately" if size >= 0.4 else "weakly"
    return f"{word} {'concordant' if tau > 0 else 'reversed'}"


def _agreement(raw: np.ndarray, cal: np.ndarray) -> str:
    """Kendall's τ_b between the raw and the calibrated values, with its p-value and a word for its strength."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = kendalltau(raw, cal)
    stat, pvalue = float(result.statistic), float(result.pvalue)
    if np.isfinite(stat):
        return f"Kendall τ_b = {stat:.2f} (p = {pvalue:.2g}), the orders are {_strength(stat)}"
    return "Kendall τ_b is undefined, one of the orders being all ties"


def _moves_sentence(moves: list[tuple[str, int, int]], raw_sig: Ranking | None, cal_sig: Ranking | None,
                    count: int) -> str | None:
    """The methods whose rank moves most from raw to calibrated: with stored draws, only moves whose two 95% rank
    intervals are disjoint (at most 3); without, the largest moves of the point ranks (at most 3)."""
    if raw_sig is None or cal_sig is None:
        moved_points = [m for m in moves if m[1] != m[2]][:3]
        if not moved_points:
            return None
        return (f"Largest moves of the point ranks (rank raw → calibrated, of {count}; no uncertainty stored): " +
                "; ".join(f"{n} {r} → {c}" for n, r, c in moved_points) + ".")
    # a move is stated only where the two 95% rank intervals are disjoint
    moved = [m for m in moves if m[0] in raw_sig.ranks and m[0] in cal_sig.ranks
             and (raw_sig.ranks[m[0]][1] < cal_sig.ranks[m[0]][0]
                  or cal_sig.ranks[m[0]][1] < raw_sig.ranks[m[0]][0])][:3]
    if not moved:
        return "No method's rank interval moves clear of its other one."
    return (f"Largest significant moves (rank raw → calibrated, of {count}; 95% rank intervals disjoint): " +
            "; ".join(f"{n} {raw_sig.rank_text(n)} → {cal_sig.rank_text(n)}" for n, _, _ in moved) + ".")


def _ranking_parts(table: pd.DataFrame, task_name: str, rows: pd.DataFrame, methods: pd.DataFrame,
                   keys: tuple[str, str]) -> list[str]:
    """The sentences comparing the order of ``methods`` by the raw key with the order by the calibrated key
    (``keys``): Kendall τ_b, the best group of each order, and the largest rank moves."""
    raw_key, cal_key = keys
    if raw_key not in rows or cal_key not in rows:
        return [f"Add `{raw_key}` and `{cal_key}` to the columns to compare the rankings."]
    both = methods[np.isfinite(methods[raw_key].astype(float)) & np.isfinite(methods[cal_key].astype(float))]
    if len(both) < 2:
        return [f"Fewer than two methods have both `{raw_key}` and `{cal_key}`, so there is no ranking to compare."]
    sign = 1.0 if column_direction(raw_key) == "lower" else -1.0
    names = list(both["method"])
    raw, cal = both[raw_key].to_numpy(float), both[cal_key].to_numpy(float)
    raw_rank = rankdata(sign * raw, method="min").astype(int)
    cal_rank = rankdata(sign * cal, method="min").astype(int)
    parts = [f"Ranking the {len(names)} methods by raw `{raw_key}` and by `{cal_key}` (forget efficacy at matched "
             f"utility; {column_direction(raw_key)} is better): {_agreement(raw, cal)}."]
    raw_sig, cal_sig = ranking(table, task_name, raw_key, names), ranking(table, task_name, cal_key, names)
    parts.append(f"Raw, {_best_group(raw_sig, both, raw_key)}; calibrated, {_best_group(cal_sig, both, cal_key)}.")
    moves = sorted(zip(names, raw_rank, cal_rank), key=lambda m: (-abs(m[2] - m[1]), m[1], m[0]))
    sentence = _moves_sentence(moves, raw_sig, cal_sig, len(names))
    return parts if sentence is None else [*parts, sentence]


def _ga_sentence(board: LeaderboardSpec, rows: pd.DataFrame, ga_rows: pd.DataFrame, target: pd.DataFrame,
                 keys: tuple[str, str]) -> str | None:
    """GA's raw utility U against the target's and the threshold τ·U(target); below it, its raw forget ES is
    reached by losing retained knowledge too; with a calibration, its calibrated forget ES at α*."""
    raw_key, cal_key = keys
    u_key = UTILITY_METRIC[board.control.utility]
    if not (len(ga_rows) and u_key in rows and len(target) and np.isfinite(ga_rows[u_key].iloc[0])
            and np.isfinite(target[u_key].iloc[0])):
        return None
    u_ga, u_target = float(ga_rows[u_key].iloc[0]), float(target[u_key].iloc[0])
    threshold = board.control.tau * u_target
    share = f" ({100 * u_ga / u_target:.0f}% of it)" if u_target > 0 else ""
    side = "below" if u_ga < threshold else "at or above"
    text = (f"{ga_rows['method'].iloc[0]}'s raw {UTILITY_NAMES[board.control.utility]} (`{u_key}`) is {u_ga:.3f} "
            f"against the target's {u_target:.3f}{share}, {side} the calibration threshold τ·U(target) = "
            f"{threshold:.3f}")
    if u_ga < threshold and raw_key in rows and np.isfinite(ga_rows[raw_key].iloc[0]):
        text += f": its raw `{raw_key}` of {float(ga_rows[raw_key].iloc[0]):.3f} is reached by losing " \
                "retained knowledge too"
    if "alpha" in rows and cal_key in rows and np.isfinite(ga_rows["alpha"].iloc[0]) and \
            np.isfinite(ga_rows[cal_key].iloc[0]):
        text += (f"; calibrated (α* = {float(ga_rows['alpha'].iloc[0]):.3f}) its `{raw_key}` is "
                 f"{float(ga_rows[cal_key].iloc[0]):.3f}")
    return text + "."


def finding(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "Finding" paragraph, computed from ``table``: how the order of methods by raw ``forget/es`` compares
    with the order by ``calibrated/forget/es`` (Kendall tau-b, the methods that move most), and GA's raw utility
    against the target's."""
    keys = tuple(key_text(MetricKey("es", "forget", view)) for view in (RAW, CALIBRATED))
    ga = ga_label(board)
    paragraphs = []
    for task_name, rows in table.groupby("task", sort=False):
        methods = rows[~rows["reference"].astype(bool)]
        target = rows[rows["method"] == REFERENCE_LABELS["target"]]
        parts = _ranking_parts(table, task_name, rows, methods, keys)
        ga_rows = methods[methods["method"] == ga] if ga else methods.iloc[0:0]
        ga_text = _ga_sentence(board, rows, ga_rows, target, keys)
        if ga_text is not None:
            parts.append(ga_text)
        prefix = f"On `{task_name}`: " if table["task"].nunique() > 1 else ""
        paragraphs.append(f"**Finding.** {prefix}" + " ".join(parts))
    return "\n\n".join(paragraphs)
