"""Bootstrap 95% intervals of item-metric means: reproducible, sensible, and in agreement with scipy's bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.metrics.base import ItemMetric, bootstrap_interval


def test_interval_is_seeded_and_brackets_the_mean() -> None:
    values = np.random.default_rng(3).normal(0.4, 0.2, size=200)
    low, high = bootstrap_interval(values)
    assert (low, high) == bootstrap_interval(values)  # reproducible from the stored per-item values
    assert low < values.mean() < high
    # Percentile bootstrap of a mean of 200 roughly normal values: width ~ 2 * 1.96 * s / sqrt(n).
    expected = 2 * 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) == pytest.approx(expected, rel=0.15)


def test_interval_agrees_with_scipy_bootstrap() -> None:
    values = np.random.default_rng(5).beta(0.5, 0.5, size=300)  # skewed, bimodal per-item scores in [0, 1]
    low, high = bootstrap_interval(values, resamples=4000)
    ref = stats.bootstrap((values,), np.mean, confidence_level=0.95, method="percentile", n_resamples=4000,
                          random_state=np.random.default_rng(1)).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.01) and high == pytest.approx(ref.high, abs=0.01)


def test_degenerate_inputs() -> None:
    assert bootstrap_interval(np.ones(50)) == (1.0, 1.0)
    assert bootstrap_interval(np.array([0.3])) == (None, None)
    assert bootstrap_interval(np.array([0.3, np.nan, 0.1])) == (None, None)


def test_item_metric_aggregate_carries_the_interval() -> None:
    metric = ItemMetric("x", "test", "higher", "lower", per_item=lambda s: np.zeros(0))
    values = np.linspace(0, 1, 101)
    agg = metric.aggregate(values, "retain")
    assert agg.value == pytest.approx(0.5) and agg.n == 101
    assert (agg.ci_low, agg.ci_high) == bootstrap_interval(values)


def test_model_metric_interval_matches_a_manual_bootstrap_with_sklearn() -> None:
    """bootstrap_model_intervals on mia_auc_loss: the same seeded per-split draws, recomputed by hand with
    scikit-learn's roc_auc_score, give the same percentile interval (to 1e-9)."""
    from sklearn.metrics import roc_auc_score

    from bench.metrics.base import MODEL_BOOTSTRAP_RESAMPLES, bootstrap_model_intervals
    from bench.registry import METRICS

    rng = np.random.default_rng(11)
    per_item = {"forget": {"mia_loss": rng.normal(0.5, 1, 40)}, "holdout": {"mia_loss": rng.normal(0, 1, 60)}}
    metric = METRICS.get("mia_auc_loss")
    low, high = bootstrap_model_intervals({"auc": metric.compute}, per_item, None)["auc"]
    draws = np.random.default_rng(0)
    aucs = []
    for _ in range(MODEL_BOOTSTRAP_RESAMPLES):
        f = per_item["forget"]["mia_loss"][draws.integers(0, 40, size=40)]
        h = per_item["holdout"]["mia_loss"][draws.integers(0, 60, size=60)]
        aucs.append(roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[f, h]))
    want = np.quantile(aucs, [0.025, 0.975])
    assert (low, high) == pytest.approx(tuple(want), abs=1e-9)
    assert low < metric.compute(per_item, None) < high


def test_model_metric_interval_resamples_model_and_oracle_together() -> None:
    """PrivLeak of a model against itself is 0 in every resample (shared draws), so its interval is [0, 0]."""
    from bench.metrics.base import bootstrap_model_intervals
    from bench.registry import METRICS

    rng = np.random.default_rng(2)
    per_item = {"forget": {"mia_loss": rng.normal(1, 1, 30)}, "holdout": {"mia_loss": rng.normal(0, 1, 30)}}
    oracle = {k: {n: v.copy() for n, v in d.items()} for k, d in per_item.items()}
    out = bootstrap_model_intervals({"leak": METRICS.get("privleak_loss").compute}, per_item, oracle)
    assert out["leak"] == (0.0, 0.0)
    assert bootstrap_model_intervals({"leak": METRICS.get("privleak_loss").compute},
                                     {"forget": {"mia_loss": np.ones(1)}}, None)["leak"] == (None, None)
