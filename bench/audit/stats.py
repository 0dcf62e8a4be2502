"""The audit's statistics, per metric m (oriented by its sign s: s*m is higher when the model knows more).

Faithfulness (open-unlearning's meta-evaluation, arXiv 2506.12618): how well s*m separates the ``knows`` pool from
the ``never`` pool,

    AUC = P(s*m(K) > s*m(N)) + 0.5 P(s*m(K) = s*m(N)),  K ~ knows, N ~ never   (sklearn's roc_auc_score)

1 = every model that holds the knowledge scores above every model that never learned it; 0.5 = no separation.

Robustness under attack a, over the unlearned models u (this project's definition; the paper's view is below):

    gap = mean_K s*m - mean_N s*m                      (the metric's knowledge gap between the pools)
    R_a = max(0, 1 - mean_u |m_a(u) - m(u)| / gap)     (NaN where gap <= 0: the metric separates nothing)

1 = the attack does not move the metric; 0 = it moves it, on average, by as much as the whole difference between
knowing and never having known. Both directions count: a metric an attack can push either way is not trusted.
The view of Wang et al. 2024 (arXiv 2406.09179) is reported beside it: Spearman's rho between m(u) and m_a(u)
across the unlearned models (does the attack keep their order?).

Overall = harmonic mean of AUC and the mean of R_a over the attacks (as open-unlearning combines its two robustness
scores). Every interval is a 95% percentile bootstrap over models (each pool resampled with replacement,
``DRAWS`` draws, seed ``SEED``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import hmean, spearmanr
from sklearn.metrics import roc_auc_score

DRAWS, SEED = 1000, 0


def auc(knows: np.ndarray, never: np.ndarray) -> float:
    """AUC of ``knows`` (positives) vs ``never`` (negatives), ties counted one half; NaN with a non-finite value."""
    values = np.concatenate([knows, never])
    if not np.isfinite(values).all() or not len(knows) or not len(never):
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(knows)), np.zeros(len(never))], values))


def robustness(before: np.ndarray, after: np.ndarray, gap: float) -> float:
    """R_a = max(0, 1 - mean |after - before| / gap); NaN where ``gap`` <= 0 or a value is not finite."""
    if not gap > 0 or not (np.isfinite(before).all() and np.isfinite(after).all()):
        return float("nan")
    return float(max(0.0, 1.0 - np.mean(np.abs(after - before)) / gap))


def rank_correlation(before: np.ndarray, after: np.ndarray) -> float:
    if len(before) < 3 or np.ptp(before) == 0 or np.ptp(after) == 0:
        return float("nan")
    return float(spearmanr(before, after).statistic)


def overall(faithfulness: float, robust: Sequence[float]) -> float:
    """Harmonic mean of the AUC and the mean robustness (NaN if either is NaN; 0 if either is 0)."""
    values = [faithfulness, float(np.mean(robust)) if len(robust) else float("nan")]
    if not np.isfinite(values).all():
        return float("nan")
    return 0.0 if min(values) <= 0 else float(hmean(values))


def _interval(draws: list[float]) -> tuple[float, float]:
    finite = np.array([d for d in draws if np.isfinite(d)])
    if len(finite) < len(draws) / 2 or not len(finite):
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [0.025, 0.975])
    return float(low), float(high)


def metric_stats(knows: np.ndarray, never: np.ndarray, before: np.ndarray, after: dict[str, np.ndarray],
                 sign: int, draws: int = DRAWS) -> dict:
    """Faithfulness, robustness per attack, rank correlation per attack and overall, each with its interval, for
    one metric (``after[a]`` aligned with ``before``: the same unlearned models)."""
    k, n = sign * knows, sign * never
    gap = float(np.mean(k) - np.mean(n))
    point = {"auc": auc(k, n), "gap": gap,
             "robustness": {a: robustness(before, v, gap) for a, v in after.items()},
             "spearman": {a: rank_correlation(before, v) for a, v in after.items()}}
    point["overall"] = overall(point["auc"], list(point["robustness"].values()))
    rng = np.random.default_rng(SEED)
    boot: dict[str, list[float]] = {"auc": [], "overall": [], **{f"R/{a}": [] for a in after}}
    for _ in range(draws):
        ki, ni = rng.integers(0, len(k), len(k)), rng.integers(0, len(n), len(n))
        ui = rng.integers(0, len(before), len(before))
        draw_gap = float(np.mean(k[ki]) - np.mean(n[ni]))
        r = {a: robustness(before[ui], v[ui], draw_gap) for a, v in after.items()}
        boot["auc"].append(auc(k[ki], n[ni]))
        for a, value in r.items():
            boot[f"R/{a}"].append(value)
        boot["overall"].append(overall(boot["auc"][-1], list(r.values())))
    point["intervals"] = {name: _interval(values) for name, values in boot.items()}
    return point
