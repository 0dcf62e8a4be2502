"""Hyper-parameter search under a budget tier (arXiv 2406.09179): trials are sampled from the declared search
space, run as ordinary stored runs under mixing control, and selected on calibrated forget ES only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.grid.search import Trial, sample_trials, search, select
from bench.methods.base import full_hparams, make_method, search_space_of
from bench.registry import METHODS
from bench.specs.mapping import SpecError
from bench.specs.run import ControlSpec
from bench.specs.tiers import tier

from .conftest import MINI

SMOKE = tier("smoke")
N_TRIALS = 3


def _expected_selection(records: list) -> int | None:
    """Argmin over ok records of (calibrated forget ES, -AUC, trial index), computed from the records."""
    candidates = [(r.control.calibrated_metrics["forget/es"].value, -r.control.tradeoff.auc, i)
                  for i, r in enumerate(records) if r.ok]
    return min(candidates)[2] if candidates else None


def test_sampling_is_deterministic_in_the_space_and_starts_with_the_entry() -> None:
    trials = sample_trials("npo", {}, N_TRIALS, seed=0)
    assert trials == sample_trials("npo", {}, N_TRIALS, seed=0)
    assert len(trials) == N_TRIALS
    assert trials[0] == full_hparams(make_method("npo", {}))
    space = search_space_of(METHODS.get("npo").Params)
    assert set(space) == {"beta", "retain_loss", "retain_weight", "temperature"}
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == N_TRIALS
    for params in trials[1:]:  # a late field (temperature) is left out of the full parameters at its default
        assert all(params.get(name, getattr(make_method("npo").params, name)) in values
                   for name, values in space.items())
        assert full_hparams(make_method("npo", params)) == params
    explicit = sample_trials("npo", {"beta": 0.7}, N_TRIALS, seed=0)
    assert explicit[0]["beta"] == 0.7 and all(t["beta"] in space["beta"] for t in explicit[1:])
    everything = sample_trials("npo", {}, 10_000, seed=0)  # capped at the distinct valid combinations
    assert len(everything) == math.prod(len(v) for v in space.values())


def test_selection_ignores_failed_and_over_budget_trials() -> None:
    trials = [Trial(0, {}, "a", "ok", 0.5, 1.0, 0.1), Trial(1, {}, "b", "failed", None, None, None, "nan"),
              Trial(2, {}, "c", "budget_exceeded", 0.0, 1.0, 0.9), Trial(3, {}, "d", "ok", 0.5, 0.6, 0.3),
              Trial(4, {}, "e", "ok", 0.5, 0.6, 0.3)]
    assert select(trials) == 3  # equal ES: higher AUC wins, then the earlier trial
    assert select(trials[1:3]) is None


def test_search_runs_stores_selects_and_reuses(store, monkeypatch: pytest.MonkeyPatch) -> None:
    result = search(MINI, "forget10", "npo", {}, SMOKE, 0, store, ControlSpec(), N_TRIALS)
    assert [t.params for t in result.trials] == sample_trials("npo", {}, N_TRIALS, 0)
    records = [store.load_run(t.run_id) for t in result.trials]
    assert all(r is not None for r in records) and len({t.run_id for t in result.trials}) == N_TRIALS
    for trial, record in zip(result.trials, records):
        assert record.spec["hparams"] == trial.params and record.spec["budget"]["tier"] == "smoke"
        assert trial.status == record.status
        if record.ok:
            assert trial.alpha == record.control.calibration.alpha
            assert trial.forget_es == record.control.calibrated_metrics["forget/es"].value
    assert result.selected == _expected_selection(records) is not None
    summary = json.loads(store.search_path(result.id).read_text())
    assert summary["id"] == result.id and store.load_search(result.id) == result
    assert summary["selected"] == result.selected and len(summary["trials"]) == N_TRIALS
    assert summary["selected_params"] == result.trials[result.selected].params
    assert [t["run_id"] for t in summary["trials"]] == [t.run_id for t in result.trials]

    import bench.run.execute

    monkeypatch.setattr(bench.run.execute, "unlearn", lambda *a, **k: pytest.fail("a stored trial was trained again"))
    again = search(MINI, "forget10", "npo", {}, SMOKE, 0, store, ControlSpec(), N_TRIALS)
    assert again.trials == result.trials and again.selected == result.selected
    assert again.id == result.id


@pytest.mark.parametrize("kind", ["none", "early_stop"])
def test_search_needs_mixing_control(kind: str, store) -> None:
    with pytest.raises(SpecError, match="mixing"):
        search(MINI, "forget10", "npo", {}, SMOKE, 0, store, ControlSpec(kind=kind), N_TRIALS)
    assert not store.root.exists()


def _board(folder: Path, budget: str) -> Path:
    path = folder / "leaderboards" / "tune.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""name: tune
version: "1"
tasks: [{{task: {MINI}, split: forget10}}]
methods: [{{method: npo, label: NPO}}, {{method: ga, label: GA}}]
seeds: [0]
budget: {budget}
columns: [forget/es]
sort: {{by: forget/es, descending: false}}
""")
    return path


def test_tune_cli_prints_trials_and_selection(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    smoke_board = _board(tmp_path, "smoke")
    assert main(["tune", str(smoke_board), "--method", "NPO", "--trials", "2", "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ubench: error: ") and "\n" not in err and "allowance" in err
    assert not results.exists()

    custom = _board(tmp_path, "{steps: 3, lr: 2.0e-4, batch_size: 4}")
    assert main(["tune", str(custom), "--method", "NPO", "--trials", "2", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    trial_lines = [line for line in out.splitlines() if " trial " in line and "|" in line]
    assert len(trial_lines) == 2 and sum(line.lstrip().startswith("*") for line in trial_lines) == 1
    assert "trial 0: beta=0.1" in out and "alpha=" in out and "forget_es@alpha=" in out and "auc=" in out
    assert "selected" in out and "/NPO/seed0: trial " in out and "/GA/" not in out
    assert len(list((results / "searches").glob("*.json"))) == 1
