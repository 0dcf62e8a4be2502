"""The control protocol of arXiv 2406.09179 on the tiny model: calibration by model mixing meets its contract,
probes are memoised, early stopping rolls back, budget tiers are enforced and recorded."""

from __future__ import annotations

import math

import pytest
import torch

from bench.data.tokenize import encode_qa
from bench.methods.base import make_method
from bench.models.tiny import get_model, get_tokenizer
from bench.run.calibrate import GRID, AnswerScorer, MixedModel, MixingProbe, ProbeResult, calibrate, pareto_auc
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.run.train import lr_at, unlearn
from bench.specs.mapping import SpecError
from bench.specs.run import Budget, ControlSpec
from bench.specs.tiers import tier, tier_seeds, tier_trials, tiers

from .conftest import MINI, PLUGINS

HARSH = Budget(steps=12, lr=1e-3, batch_size=8, callback_every=3)  # GA destroys the mini model's retain ES


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


@pytest.fixture(scope="module")
def ga_unlearned(mini_data):
    """(tokenizer, target state, GA-unlearned model) on the mini task under the harsh budget."""
    tokenizer = get_tokenizer(mini_data)
    target = get_model(mini_data, "target")
    model = target.load()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    template = mini_data.config.prompt_template
    forget = [encode_qa(tokenizer, template, q, a, add_eos=True)
              for q, a in zip(mini_data.forget["question"], mini_data.forget["answer"])]
    unlearn(model, make_method("ga"), forget, [], HARSH, seed=0, pad_id=tokenizer.pad_token_id)
    return tokenizer, state, model


def test_mixed_model_interpolates_weights(ga_unlearned) -> None:
    """theta(alpha) = (1 - alpha) theta_target + alpha theta_unlearned, in place; alpha = 1 restores theta_unl."""
    _, target_state, model = ga_unlearned
    unlearned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    mixed = MixedModel(model, target_state)
    name = "model.layers.0.mlp.down_proj.weight"
    for alpha in (0.0, 0.3, 1.0):
        mixed.set_alpha(alpha)
        expected = (1 - alpha) * target_state[name] + alpha * unlearned[name]
        torch.testing.assert_close(model.state_dict()[name], expected)
    assert mixed.pairs  # GA changed the weights


def test_calibration_contract_on_the_tiny_model(mini_data, ga_unlearned) -> None:
    """U(theta(alpha*)) >= tau U(target) and U(theta(alpha* + 0.02)) < tau U(target) (or alpha* = 1), with U the
    retain extraction strength, each checked by a fresh scoring pass (no memoised value)."""
    tokenizer, target_state, model = ga_unlearned
    tau = 0.9
    mixed = MixedModel(model, target_state)
    scorer = AnswerScorer(tokenizer, mini_data)
    mixed.set_alpha(0.0)
    u_target = scorer(model)[1]
    mixed.set_alpha(1.0)
    assert scorer(model)[1] < tau * u_target  # GA over-unlearned: calibration has work to do
    probe = MixingProbe(mixed, scorer, "retain_es")
    alpha = calibrate(probe, u_target, tau, tolerance=0.01)
    assert 0.0 < alpha < 1.0

    def utility(a: float) -> float:
        mixed.set_alpha(a)
        return scorer(model)[1]

    assert utility(alpha) >= tau * u_target
    assert utility(min(alpha + 0.02, 1.0)) < tau * u_target
    mixed.set_alpha(1.0)


def test_probes_are_memoised_and_the_grid_reuses_bisection_points(ga_unlearned, mini_data) -> None:
    tokenizer, target_state, model = ga_unlearned
    mixed = MixedModel(model, target_state)
    probe = MixingProbe(mixed, AnswerScorer(tokenizer, mini_data), "retain_es")
    probe.seed(ProbeResult(0.0, 1.0, 1.0))
    calibrate(probe, 1.0, 0.9, 0.01)
    passes = probe.scoring_passes
    for a in (0.0, 0.5, 1.0):  # 0 seeded, 0.5 and 1 probed by the bisection
        probe(a)
    assert probe.scoring_passes == passes
    for a in GRID:
        probe(a)
    assert probe.scoring_passes <= passes + 2  # at most 0.25 and 0.75 are new
    assert probe.scoring_passes < probe.probes
    mixed.set_alpha(1.0)


def test_calibrate_on_a_known_monotone_utility() -> None:
    """U(alpha) = 1 - alpha^2: the largest alpha with U >= 0.9 is sqrt(0.1) = 0.3162; bisection returns a passing
    alpha within the tolerance below it; a method that never loses utility gets alpha = 1."""
    def probe_of(f):
        return lambda a: ProbeResult(a, f(a), 0.0)

    alpha = calibrate(probe_of(lambda a: 1 - a * a), 1.0, 0.9, 0.01)
    assert math.sqrt(0.1) - 0.01 <= alpha <= math.sqrt(0.1)
    assert calibrate(probe_of(lambda a: 1.0), 1.0, 0.9, 0.01) == 1.0


def test_pareto_auc_by_hand() -> None:
    """Points (x = U/U0, y = 1 - ES/ES0): (1, 0), (0.9, 0.5), (0.5, 0.6), (0.2, 1.0) -> frontier E(x) = 0 on
    (0.9, 1], 0.5 on (0.5, 0.9], 0.6 on (0.2, 0.5], 1 on [0, 0.2]: area = 0.2 + 0.18 + 0.2 = 0.58."""
    pts = [ProbeResult(0, 1.0, 1.0), ProbeResult(0.3, 0.9, 0.5), ProbeResult(0.6, 0.5, 0.4), ProbeResult(1, 0.2, 0.0)]
    assert pareto_auc(pts, 1.0, 1.0) == pytest.approx(0.58)
    # A dominated point changes nothing.
    assert pareto_auc([*pts, ProbeResult(0.5, 0.4, 0.9)], 1.0, 1.0) == pytest.approx(0.58)


def test_run_record_carries_calibration_tradeoff_and_budget(store) -> None:
    record = execute(make_run_spec(MINI, "forget10", "ga", {}, HARSH, seed=0), store)
    assert record.ok, record.error
    control = record.control
    cal = control.calibration
    assert cal.u_alpha >= cal.tau * cal.u_target
    assert cal.u_unlearned < cal.tau * cal.u_target and 0 < cal.alpha < 1
    assert cal.scoring_passes < cal.probe_calls
    assert control.calibrated_metrics["retain/es"].value == pytest.approx(cal.u_alpha)
    alphas = [p["alpha"] for p in control.tradeoff.points]
    assert set(GRID) <= set(alphas) and cal.alpha in alphas
    assert 0 <= control.tradeoff.auc <= 1
    assert [c["step"] for c in control.checkpoints] == [3, 6, 9, 12]
    assert record.budget.declared["steps"] == 12 and record.budget.used["optimizer_steps"] == 12
    assert record.budget.used["forward_passes"] == 12 and record.budget.exceeded == []


def test_early_stopping_rolls_back_to_the_last_passing_checkpoint(store) -> None:
    spec = make_run_spec(MINI, "forget10", "ga", {}, HARSH, seed=0, control=ControlSpec(kind="early_stop"))
    record = execute(spec, store)
    assert record.ok, record.error
    checkpoints = record.control.checkpoints
    stopped = record.budget.used["stopped_early_at"]
    assert stopped == checkpoints[-1]["step"] < HARSH.steps and not checkpoints[-1]["passed"]
    assert record.control.calibration is None
    u_target = record.control.u_target
    assert record.metrics["retain/es"].value >= 0.9 * u_target  # rolled back to a passing model


def test_a_method_over_its_forward_pass_allowance_is_budget_exceeded(store) -> None:
    from bench.registry import METHODS

    if "over_budget" not in METHODS:
        METHODS.load_plugin_file(str(PLUGINS / "over_budget.py"))
    budget = tier("smoke")
    record = execute(make_run_spec(MINI, "forget10", "over_budget", {}, budget, seed=0), store)
    assert record.status == "budget_exceeded"
    used = record.budget.used["forward_passes"]
    assert used == 10 * budget.steps > budget.forward_pass_limit
    assert "forward passes" in record.error.message


def test_tiers_are_declared_ordered_and_named() -> None:
    names = list(tiers())
    assert names == ["smoke", "smoke-search", "mini", "standard", "full"]
    assert tiers()["smoke"].steps < tiers()["mini"].steps < tiers()["standard"].steps < tiers()["full"].steps
    assert tier_seeds("mini") == tier_seeds("standard") == 3  # the two-minute board's intervals cover seeds too
    assert all(b.tier == n for n, b in tiers().items())
    assert tier_seeds("full") > 1 and tier_trials("full") > 1 and tier_trials("standard") == 1
    with pytest.raises(SpecError, match="unknown budget tier 'huge'"):
        tier("huge")


@pytest.mark.parametrize(("schedule", "expected"), [
    ("constant", [1.0, 1.0, 1.0, 1.0]),
    ("linear", [1.0, 0.75, 0.5, 0.25]),
    ("cosine", [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]),
])
def test_learning_rate_schedules(schedule: str, expected: list[float]) -> None:
    budget = Budget(steps=6, lr=1.0, warmup_steps=2, schedule=schedule)
    assert [lr_at(s, budget) for s in range(2)] == [0.5, 1.0]
    assert [lr_at(s, budget) for s in range(2, 6)] == pytest.approx(expected)


def test_a_board_on_a_tier_with_trials_shows_each_cells_selected_trial(tmp_path, capsys) -> None:
    """Tier ``smoke-search`` allows 2 trials: ``ubench run`` runs a calibrated search per cell, stores its summary,
    and the board row is the selected trial's record (``cell_record``)."""
    import json

    from bench.cli.main import main
    from bench.grid.cells import cell_record, plan, trials_per_cell
    from bench.specs.board import LeaderboardSpec

    from .conftest import mini_board

    path = mini_board(tmp_path, methods="[{method: npo}]")
    text = path.read_text()
    lines = [line for line in text.splitlines() if not line.startswith("budget:")]
    path.write_text("\n".join([*lines, "budget: smoke-search"]) + "\n")
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results)]) == 0
    board = LeaderboardSpec.load(path)
    assert trials_per_cell(board) == 2
    (summary_file,) = (results / "searches").glob("*.json")
    summary = json.loads(summary_file.read_text())
    assert len(summary["trials"]) == 2 and summary["selected"] in (0, 1)
    from bench.runtime.store import Store

    (cell,) = plan(board)
    record = cell_record(cell, board, Store(results))
    assert record.id == summary["trials"][summary["selected"]]["run_id"]
    assert record.search.search_id == summary["id"] and record.search.selected == summary["selected"]
    assert len(list((results / "runs").iterdir())) == 2
