"""The metric audit (bench.audit): its statistics against hand values and an independent library, the orientation
of every audited metric, and a mini audit end to end on the mini task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu


def test_faithfulness_auc_is_the_mann_whitney_statistic():
    from bench.audit.stats import auc

    rng = np.random.default_rng(0)
    knows, never = rng.normal(1, 1, 12), rng.normal(0, 1, 9)
    u = mannwhitneyu(knows, never).statistic
    assert auc(knows, never) == pytest.approx(u / (12 * 9))
    assert auc(np.array([1.0, 2.0]), np.array([0.0, 0.5])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5  # a tie counts one half
    assert np.isnan(auc(np.array([np.nan]), np.array([1.0])))


def test_robustness_and_overall_by_hand():
    from bench.audit.stats import overall, robustness

    before, after = np.array([0.1, 0.2]), np.array([0.2, 0.2])
    assert robustness(before, after, gap=0.5) == pytest.approx(1 - 0.05 / 0.5)
    assert robustness(before, after + 10, gap=0.5) == 0.0  # moved by more than the gap: clipped at 0
    assert np.isnan(robustness(before, after, gap=0.0))  # a metric that separates nothing has no robustness
    assert overall(0.8, [0.5, 0.7]) == pytest.approx(2 * 0.8 * 0.6 / 1.4)  # harmonic mean of AUC and mean R
    assert np.isnan(overall(float("nan"), [0.5]))


def test_metric_orientation():
    """+1 where a higher value means more forget knowledge, -1 where a lower one does; retain metrics and model
    utility are not audited."""
    from bench.audit.measure import audited_metrics

    signs = audited_metrics(["forget/es", "forget/prob", "forget/truth_ratio", "forget_quality", "mia_auc_loss",
                             "privleak_minkpp", "retain/es", "model_utility", "holdout/prob"])
    assert signs == {"forget/es": 1, "forget/prob": 1, "forget/truth_ratio": -1, "forget_quality": -1,
                     "mia_auc_loss": 1, "privleak_minkpp": -1}


def test_audit_attacks_transform_models_or_prompts():
    from bench.audit.measure import RELEARN, audit_attacks

    names = audit_attacks()
    assert {"quant4", "nf4", "jailbreak", "benign_ft", RELEARN} <= set(names)
    assert not {"logit_lens", "patch", "sample", "icl"} & set(names)  # probes with their own scores


def test_a_mini_audit_end_to_end(tmp_path: Path):
    """One replicate, one variant, GA under the smoke tier, two attacks: targets hold ES 1 and oracles do not,
    so ES separates the pools perfectly (AUC 1); the record is written, re-readable and content-hashed."""
    from bench.audit.pools import VARIANTS
    from bench.audit.report import run_audit, write_audit

    record = run_audit("synthetic-mini", "forget10", [0], "smoke", ["ga"], VARIANTS[:1],
                       log=lambda _: None, attacks=["quant4", "relearn"], draws=50)
    pools = [(r["pool"], r["how"], r["attack"]) for r in record["rows"]]
    assert ("knows", "target", "none") in pools and ("never", "oracle", "quant4") in pools
    assert ("unlearned", "ga", "relearn") in pools and len(pools) == 4 + 2 + 3
    es = record["stats"]["forget/es"]
    assert es["auc"] == 1.0 and es["gap"] > 0.5
    assert 0.0 <= es["robustness"]["quant4"] <= 1.0
    files = write_audit(record, tmp_path / "audit")
    assert all(f.is_file() for f in files)
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["id"] == record["id"]
    assert "Finding." in (tmp_path / "audit" / "audit.md").read_text()
