"""Uncertainty over seeds and items for a board: a paired, hierarchical bootstrap on the records' stored replicates.

A board's seed is a replicate of the whole experiment (its own target, retain oracle and unlearning order), and
every evaluation stores, per metric, its value on ``MODEL_BOOTSTRAP_RESAMPLES`` shared item draws
(``record.metrics[k].boot``; ``bench.metrics.base.bootstrap_draws``: the same item draws for every model of a task).
The board's estimator for a row with per-seed values x_s (s = 1..k) and replicates x_s[b]:

    draw j:  seeds S_j = k seeds drawn with replacement,  b_j = one item draw;   x_j = mean_{s in S_j} x_s[b_j]

then the percentile 95% interval of x_j over J = ``DRAWS`` draws (two-stage: seeds, then items within the drawn
seeds, Davison & Hinkley 1997, sec. 3.8). Seed-to-seed training noise and item sampling are both in it; with one
seed it is the item bootstrap. A metric without replicates (lm-eval, relearning, G-effect) contributes its
per-seed value at every b (seed variance only). With k = 3 seeds the seed stage can take only 10 distinct
multisets, so the intervals are, if anything, narrow: say so where they are read.

(S_j, b_j) are shared by every row of a task, so differences are paired: row m is *tied with the best* when the
95% interval of (score_m - score_best)_j contains 0, where score orders rows best-first (the value, its negation,
or the distance to an ideal value), and its *rank interval* is the 2.5-97.5% range of its rank over the draws.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

DRAWS = 2000
SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class SeedDraws:
    """The shared draws of one task's rows: ``seeds[j]`` (k indices) and ``items[j]`` (one replicate index)."""

    seeds: np.ndarray  # (DRAWS, k)
    items: np.ndarray  # (DRAWS,) uniform in [0, 1): replicate floor(u * B) of a B-replicate matrix

    @classmethod
    def make(cls, k: int, draws: int = DRAWS, seed: int = SEED) -> SeedDraws:
        rng = np.random.default_rng(seed)
        return cls(rng.integers(0, max(1, k), size=(draws, max(1, k))), rng.random(draws))

    def resample(self, matrix: np.ndarray) -> np.ndarray:
        """x_j = mean over the drawn seeds of ``matrix[s, b_j]`` (``matrix``: k seeds x B replicates; NaN-aware).
        A row with fewer seeds than the board resamples its own seeds with the same item draws."""
        k = matrix.shape[0]
        seeds = self.seeds if k == self.seeds.shape[1] else self.seeds % k
        items = np.floor(self.items * matrix.shape[1]).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a draw whose every value is NaN gives NaN
            return np.nanmean(matrix[seeds, items[:, None]], axis=1)


def seed_matrix(values: Sequence[float], replicates: Sequence[Sequence[float | None] | None]) -> np.ndarray:
    """k x B: each seed's stored replicates (None -> NaN), or its value at every b where it has none."""
    width = max((len(r) for r in replicates if r), default=1)
    rows = []
    for value, reps in zip(values, replicates):
        if reps:
            rows.append([np.nan if x is None else float(x) for x in reps][:width] + [np.nan] * (width - len(reps)))
        else:
            rows.append([float(value)] * width)
    return np.array(rows, dtype=np.float64)


def interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if len(finite) < len(draws) / 2 or not len(finite):
        return np.nan, np.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class Ranking:
    """Significance of one column's order among a task's method rows."""

    best: str
    tied: tuple[str, ...]  # rows whose paired difference to the best is not significant (the best included)
    ranks: dict[str, tuple[int, int]]  # 95% rank interval per row

    def rank_text(self, label: str) -> str:
        if label not in self.ranks:
            return ""
        low, high = self.ranks[label]
        return f"{low}" if low == high else f"{low}–{high}"


def rank_rows(points: Mapping[str, float], draws: Mapping[str, np.ndarray], score, level: float = LEVEL
              ) -> Ranking | None:
    """``Ranking`` of the rows with a finite point value and draws. ``score(v)`` maps values so that smaller is
    better (applied to points and draws alike)."""
    labels = [m for m in points if np.isfinite(points[m]) and m in draws]
    if not labels:
        return None
    point = np.array([score(points[m]) for m in labels])
    best = labels[int(np.argmin(point))]
    matrix = np.vstack([score(draws[m]) for m in labels])  # rows x DRAWS
    tied = []
    for m, row in zip(labels, matrix):
        diff = row - matrix[labels.index(best)]
        low, high = interval(diff, level)
        if m == best or not np.isfinite(low) or low <= 0 <= high:
            tied.append(m)
    filled = np.where(np.isfinite(matrix), matrix, np.inf)
    ranks = np.apply_along_axis(lambda col: rankdata(col, method="min"), 0, filled)
    q = (1 - level) / 2
    intervals = {m: (int(np.floor(np.quantile(r, q))), int(np.ceil(np.quantile(r, 1 - q))))
                 for m, r in zip(labels, ranks)}
    return Ranking(best, tuple(tied), intervals)


def significantly(diff_draws: np.ndarray, above: float = 0.0, level: float = LEVEL) -> bool:
    """Whether the interval of ``diff_draws`` lies entirely above ``above``."""
    low, _ = interval(diff_draws, level)
    return bool(np.isfinite(low) and low > above)
