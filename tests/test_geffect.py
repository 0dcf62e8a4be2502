"""The G-effect (arXiv 2502.19301) against its definition, on tiny random Llamas in float64 and on the mini task:

* first order: one SGD step of size eta along -grad L_u changes R(D) by -eta * e(D), in total and per block;
* the exact (blockwise autograd) and fast (``torch.func.jvp``) paths agree, for e(D) and for the per-instance
  PG-effect (against one backward pass per item);
* GA with D_u = D: e(D) = -||grad R(D)||^2, cosine -1;
* bookkeeping: parameter blocks, block groups, blocks summing to the total, the recorder's cumulative summary;
* across a recorded optimizer step: under SGD the realised first-order change is the paper's -eta e(D) and both
  predict the measured change of R(D); under AdamW only the realised one does; the loop hands the recorder the
  update of the step it measured;
* a recorded run writes ``geffect.jsonl`` and a summary into its record.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from bench.data.tokenize import TokenBatch, collate
from bench.geffect.callback import DATA_SETS, GEffectRecorder
from bench.geffect.compute import (
    GEffect,
    block_groups,
    block_of,
    directional_derivatives,
    grads_of,
    measure,
    objective_gradient,
    per_item_logprob,
    per_item_nll,
    risk_gradient,
    trainable,
)
from bench.methods.base import (
    LossContext,
    Method,
    ReferenceModel,
    StepState,
    UnlearnBatch,
    gather_logprobs,
    make_method,
)

from .conftest import MINI, random_llama
from .test_methods import FORGET_SHAPES, RETAIN_SHAPES, toy_sequences

PAD = 0
BLOCKS = {"embeddings", "layer0", "layer1", "final_norm", "head"}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


def llama64(seed: int) -> torch.nn.Module:
    """A random 2-layer Llama in float64 (finite differences of R need more than float32's 7 digits)."""
    return random_llama(seed, init_std=0.1).double()


def toy_batches() -> tuple[TokenBatch, TokenBatch]:
    """(forget, retain): padded toy batches of 3 and 4 rows with different prompt and answer lengths."""
    return collate(toy_sequences(1, FORGET_SHAPES), PAD), collate(toy_sequences(2, RETAIN_SHAPES), PAD)


def method_and_ctx(name: str) -> tuple[Method, LossContext]:
    """``ga`` or ``npo`` (whose frozen reference is another random Llama, so log-ratios and weights are not
    trivial)."""
    method = make_method(name)
    reference = ReferenceModel(llama64(7)) if method.needs_reference else None
    return method, LossContext(reference=reference)


def measured(method_name: str):
    """The float64 toy model, its forget and retain batches, ``measure``'s G-effect of the method's objective on
    the forget batch, and that objective's gradient grad L_u."""
    model = llama64(0)
    forget, retain = toy_batches()
    method, ctx = method_and_ctx(method_name)
    objective = UnlearnBatch(forget)
    g = measure(model, method, objective, ctx, {"forget": forget, "retain": retain})
    g_u, _ = objective_gradient(model, method, objective, ctx)
    return model, forget, retain, g, g_u


def risk64(model: torch.nn.Module, batch: TokenBatch) -> float:
    """R(D) = mean over rows of NLL(a), with the log-softmax in float64 end to end."""
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].double()
        mask = (batch.labels[:, 1:] != -100).double()
        return float((-(gather_logprobs(logits, batch) * mask).sum(-1) / mask.sum(-1)).mean())


@contextmanager
def shifted(model: torch.nn.Module, direction: list[torch.Tensor], eta: float,
            block: str | None = None) -> Iterator[None]:
    """Move the trainable parameters (of ``block`` only, when given) by -eta * direction; restore them after."""
    saved = []
    with torch.no_grad():
        for (name, p), v in zip(trainable(model), direction):
            if block is None or block_of(name) == block:
                saved.append((p, p.detach().clone()))
                p.sub_(eta * v)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in saved:
                p.copy_(value)


def rel_err(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


# --------------------------------------------------------------------------------------------- first order


@pytest.mark.parametrize("method_name", ["ga", "npo"])
def test_sgd_step_changes_the_risk_by_minus_eta_times_the_g_effect(method_name: str) -> None:
    """R(theta - eta grad L_u) - R(theta) = -eta e(D) (5%) for D = forget, retain, in total and for two single
    blocks (only that block moved, by -eta times its part of grad L_u, against -eta e_block(D))."""
    model, forget, retain, g, g_u = measured(method_name)
    # A parameter step of norm 1e-4 (the weights have norm ~ 1e1): second-order terms ~1e-4 of the first.
    eta = 1e-4 / g.objective_norm
    for data_name, batch in (("forget", forget), ("retain", retain)):
        before = risk64(model, batch)
        with shifted(model, g_u, eta):
            after = risk64(model, batch)
        assert abs(g.total[data_name]) * eta > 1e-9  # far above float64 noise in R (~1e-15)
        assert rel_err(after - before, -eta * g.total[data_name]) < 0.05, (data_name, after - before)
        for block in ("embeddings", "layer1"):
            with shifted(model, g_u, eta, block):
                after = risk64(model, batch)
            expected = -eta * g.blocks[data_name][block]
            assert abs(expected) > 1e-11
            assert rel_err(after - before, expected) < 0.05, (data_name, block, after - before, expected)


# ----------------------------------------------------------------------------------------- exact vs fast


@pytest.mark.parametrize("method_name", ["ga", "npo"])
def test_total_g_effect_matches_the_mean_directional_derivative(method_name: str) -> None:
    """e(D) from the blockwise autograd path = mean_i of grad_u^T grad NLL_i from one jvp pass (1e-4)."""
    model, forget, retain, g, g_u = measured(method_name)
    for data_name, batch in (("forget", forget), ("retain", retain)):
        per_item = directional_derivatives(model, per_item_nll, batch, g_u)
        assert per_item.shape == (len(batch),)
        assert rel_err(float(per_item.mean()), g.total[data_name]) < 1e-4, data_name
    assert model.config._attn_implementation == "sdpa"  # the jvp's switch to eager attention is undone


def test_per_instance_pg_effect_matches_one_backward_pass_per_item() -> None:
    """The per-instance PG-effect grad R(D)^T grad log p(s_i) of ``measure`` (one jvp pass) = N separate
    backward passes of log p(s_i), each dotted with grad R(D) (1e-4), for D = forget and retain."""
    model = llama64(0)
    forget, retain = toy_batches()
    method, ctx = method_and_ctx("npo")
    g = measure(model, method, UnlearnBatch(forget), ctx, {"forget": forget, "retain": retain},
                instance_batch=forget)
    params = [p for _, p in trainable(model)]
    for data_name, batch in (("forget", forget), ("retain", retain)):
        g_r = risk_gradient(model, batch)
        expected = []
        for i in range(len(forget)):
            g_i = grads_of(per_item_logprob(model, forget)[i], params)
            expected.append(float(sum((a * b).sum() for a, b in zip(g_i, g_r))))
        assert len(g.per_instance[data_name]) == len(forget)
        for got, want in zip(g.per_instance[data_name], expected):
            assert rel_err(got, want) < 1e-4, (data_name, got, want)


def test_per_item_values_match_each_sequence_run_alone() -> None:
    """per_item_nll / per_item_logprob (logits only from the batch's first answer position on) = NLL(a) and
    log p(a|q) of each unpadded sequence by hand; a model that ignores ``logits_to_keep`` gives the same values."""
    from .test_methods import answer_logprobs

    class FullLogits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, **ignored):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    model = llama64(0)
    for seed, shapes in ((1, FORGET_SHAPES), (2, RETAIN_SHAPES), (3, ((6, 2), (7, 3)))):
        seqs = toy_sequences(seed, shapes)
        batch = collate(seqs, PAD)
        with torch.no_grad():
            by_hand = [answer_logprobs(model, e) for e in seqs]
            for m in (model, FullLogits(model)):
                nll, logp = per_item_nll(m, batch), per_item_logprob(m, batch)
                assert nll.tolist() == pytest.approx([float(-v.mean()) for v in by_hand], rel=1e-6)
                assert logp.tolist() == pytest.approx([float(v.sum()) for v in by_hand], rel=1e-6)


# ------------------------------------------------------------------------------------------------ GA identity


def test_ga_on_its_own_batch_is_minus_the_squared_risk_gradient_norm() -> None:
    """D_u = D and L_u = -R(D): e(D) = -||grad R(D)||^2 and the cosine is -1 (the paper's GA statement)."""
    model = llama64(0)
    forget, _ = toy_batches()
    g = measure(model, make_method("ga"), UnlearnBatch(forget), LossContext(), {"forget": forget})
    g_r = risk_gradient(model, forget)
    sq_norm = float(sum((v * v).sum() for v in g_r))
    assert sq_norm > 0
    assert rel_err(g.total["forget"], -sq_norm) < 1e-10
    assert g.objective_norm == pytest.approx(math.sqrt(sq_norm), rel=1e-10)
    assert g.cosine["forget"] == pytest.approx(-1.0, abs=1e-10)
    for block, value in g.blocks["forget"].items():
        assert value <= 0, block  # blockwise: -||grad_b R||^2


# ------------------------------------------------------------------------------------------- bookkeeping


def test_block_of_names_llama_and_gpt_parameters() -> None:
    model = random_llama(0, init_std=0.1)
    blocks = {name: block_of(name) for name, _ in model.named_parameters()}
    assert set(blocks.values()) == BLOCKS
    assert blocks["model.embed_tokens.weight"] == "embeddings"
    assert blocks["model.layers.1.self_attn.q_proj.weight"] == "layer1"
    assert blocks["model.layers.0.post_attention_layernorm.weight"] == "layer0"  # a layer's norm is the layer's
    assert blocks["model.norm.weight"] == "final_norm"
    assert blocks["lm_head.weight"] == "head"
    assert block_of("model.layers.11.mlp.down_proj.weight") == "layer11"
    assert block_of("transformer.wte.weight") == "embeddings"
    assert block_of("transformer.h.0.attn.c_attn.weight") == "other"


def test_block_groups_are_thirds_of_the_layers() -> None:
    groups = block_groups(6)
    assert [groups[f"layer{i}"] for i in range(6)] == ["shallow"] * 2 + ["middle"] * 2 + ["deep"] * 2
    assert groups["embeddings"] == "shallow" and groups["final_norm"] == "deep" and groups["head"] == "deep"
    assert [block_groups(3)[f"layer{i}"] for i in range(3)] == ["shallow", "middle", "deep"]
    assert [block_groups(9)[f"layer{i}"] for i in range(9)] == ["shallow"] * 3 + ["middle"] * 3 + ["deep"] * 3


def test_blocks_sum_to_the_total_and_signs_are_the_papers() -> None:
    """Every block is reported, the blocks sum to e(D); GA drives e(forget) negative (risk rises)."""
    model = llama64(0)
    forget, retain = toy_batches()
    g = measure(model, make_method("ga"), UnlearnBatch(forget), LossContext(), {"forget": forget, "retain": retain},
                step=3, lr=0.5)
    assert (g.step, g.lr) == (3, 0.5)
    for data_name in ("forget", "retain"):
        assert set(g.blocks[data_name]) == BLOCKS
        assert sum(g.blocks[data_name].values()) == pytest.approx(g.total[data_name], rel=1e-12)
        assert -1.0 <= g.cosine[data_name] <= 1.0
    assert g.total["forget"] < 0
    assert g.loss == pytest.approx(-risk64(model, forget), rel=1e-6)
    assert not model.training  # eval mode restored as it was


def _recorder(measurements: list[GEffect]) -> GEffectRecorder:
    recorder = GEffectRecorder.__new__(GEffectRecorder)  # the summary reads the measurements and the spacing
    recorder.measurements, recorder.final_risk = measurements, {}
    recorder.every, recorder.total_steps = 3, 7
    return recorder


def test_recorder_summary_is_the_lr_weighted_sum_over_the_steps_each_measurement_stands_for() -> None:
    """cumulative e(D) = sum over measured steps t of lr_t e_t(D) (steps until the next measurement; the last one
    stands for min(every, total - t) steps): here spans 2, 3 and 2 (every 3, 7 steps in all); per block, per group
    (layers 0, 1 of 3 are shallow / middle), signs, NPO weights."""
    def m(step: int, lr: float, forget: dict[str, float], retain: float, weight: float | None) -> GEffect:
        return GEffect(step=step, lr=lr, loss=0.0, total={"forget": sum(forget.values()), "retain": retain},
                       blocks={"forget": forget, "retain": {"head": retain}},
                       diagnostics={} if weight is None else {"npo_weight": weight})

    measurements = [m(0, 1e-3, {"head": -5.0, "layer0": 1.0}, 9.0, 1.0),
                    m(2, 1e-3, {"head": -2.0, "layer0": 1.0}, 0.5, 0.9),
                    m(5, 2e-3, {"head": -4.0, "layer1": -1.0}, -1.0, 0.6)]
    summary = _recorder(measurements).summary(n_layers=3)
    assert summary["steps"] == [0, 2, 5]
    expected_forget = 1e-3 * -4.0 * 2 + 1e-3 * -1.0 * 3 + 2e-3 * -5.0 * 2
    assert summary["cumulative"]["forget"] == pytest.approx(expected_forget)
    assert summary["cumulative"]["retain"] == pytest.approx(1e-3 * 9.0 * 2 + 1e-3 * 0.5 * 3 + 2e-3 * -1.0 * 2)
    blocks = summary["cumulative_blocks"]["forget"]
    assert blocks == pytest.approx({"head": 1e-3 * -5.0 * 2 + 1e-3 * -2.0 * 3 + 2e-3 * -4.0 * 2,
                                    "layer0": 1e-3 * 1.0 * 2 + 1e-3 * 1.0 * 3, "layer1": 2e-3 * -1.0 * 2})
    groups = summary["cumulative_groups"]["forget"]
    assert groups == pytest.approx({"deep": blocks["head"], "shallow": blocks["layer0"], "middle": blocks["layer1"]})
    assert sum(groups.values()) == pytest.approx(expected_forget)
    assert summary["top_group"] == "deep"
    assert summary["top_group_share"] == pytest.approx(abs(groups["deep"]) / sum(abs(v) for v in groups.values()))
    assert summary["first"] == measurements[0].total and summary["last"] == measurements[-1].total
    assert summary["sign_pattern"] == {"forget_negative": 1.0, "retain_nonnegative": 2 / 3}
    assert summary["npo_weight"] == {"first": 1.0, "last": 0.6}
    assert summary["finite"] is True
    assert _recorder([]).summary(3) == {}


# ---------------------------------------------------------------------- the change one optimizer step made


def _one_recorded_step(mini_data, mini_target, make_optimizer) -> GEffect:
    """One GA step on the mini target with the optimizer ``make_optimizer(params)``, recorded as the training loop
    records it: the recorder measures with the step's gradient in ``.grad``, the optimizer steps, then
    ``step_taken``. The measurement of that step (e(D), and the realised and measured changes of R(D))."""
    model, tokenizer = mini_target
    model = copy.deepcopy(model)
    method = make_method("ga")
    recorder = GEffectRecorder(method, mini_data, tokenizer, None, n_items=8)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params)
    loss, _ = method.loss(model, recorder.objective_batch, LossContext())
    loss.backward()
    state = StepState(0, float(loss.detach()), optimizer.param_groups[0]["lr"], {})
    recorder(model, state)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    recorder.step_taken(model, state)
    (measurement,) = recorder.measurements
    assert set(measurement.measured_change) == set(measurement.realised_change) == set(DATA_SETS)
    return measurement


def test_under_sgd_the_realised_change_is_the_papers_and_both_predict_the_measured_change(mini_data,
                                                                                            mini_target) -> None:
    """Plain SGD (no momentum, no weight decay): theta_1 - theta_0 = -eta grad L_u, so r(D) = -eta e(D) up to float32
    round-off (1e-4 relative: the update itself is rounded into the weights), and both predict the measured
    change R(D)(theta_1) - R(D)(theta_0) within 5% (eta = 0.05 on the trained target: the step changes the forget
    NLL by ~7e-5, ~50x float32's noise in R, and second-order terms are ~1.5% of the first)."""
    eta = 0.05
    g = _one_recorded_step(mini_data, mini_target, lambda params: torch.optim.SGD(params, lr=eta))
    for data_name in ("forget", "retain"):
        paper = -eta * g.total[data_name]
        assert abs(g.measured_change[data_name]) > 1e-6
        assert rel_err(g.realised_change[data_name], paper) < 1e-4, data_name
        assert rel_err(paper, g.measured_change[data_name]) < 0.05, (data_name, paper, g.measured_change)
        assert rel_err(g.realised_change[data_name], g.measured_change[data_name]) < 0.05, data_name


def test_under_adamw_only_the_realised_change_predicts_the_measured_change(mini_data, mini_target) -> None:
    """AdamW's first step is about -lr sign(grad L_u) per coordinate (plus weight decay), not -lr grad L_u: on the
    trained target, whose forget gradient is tiny, it moves the forget risk thousands of times more than the
    paper's -lr e(D) says. The realised first-order change along the applied update predicts the measured change
    within 5% (lr = 3e-6: a small step); -lr e(D) is off by more than 90%."""
    lr = 3e-6
    g = _one_recorded_step(mini_data, mini_target, lambda params: torch.optim.AdamW(params, lr=lr))
    for data_name in ("forget", "retain"):
        measured_change = g.measured_change[data_name]
        assert measured_change > 0  # GA: both risks rose
        assert rel_err(g.realised_change[data_name], measured_change) < 0.05, (data_name, g.realised_change)
        assert rel_err(-lr * g.total[data_name], measured_change) > 0.9, (data_name, g.total)


def test_the_realised_change_per_block_sums_to_its_total_and_equals_forward_mode(mini_data, mini_target) -> None:
    """The realised change is computed per block in reverse mode (grad R(D)(theta_0) at the substituted weights,
    dotted with the applied update block by block). Independently, forward-mode differentiation of R(D) at theta_0
    along Delta theta (``torch.func.jvp``) gives the same total to float32 round-off, and the blocks sum to it; the
    block groups of the summary are the blocks' sums per depth third."""
    model, tokenizer = mini_target
    g = _one_recorded_step(mini_data, mini_target, lambda params: torch.optim.AdamW(params, lr=3e-6))
    assert set(g.realised_blocks) == set(DATA_SETS)
    for data_name in DATA_SETS:
        blocks = g.realised_blocks[data_name]
        assert {"embeddings", "head"} <= set(blocks) and any(b.startswith("layer") for b in blocks)
        assert sum(blocks.values()) == pytest.approx(g.realised_change[data_name], rel=1e-12)
    # the same step again, with the forward-mode derivative of the forget risk along the applied update
    trained = copy.deepcopy(model)
    method = make_method("ga")
    recorder = GEffectRecorder(method, mini_data, tokenizer, None, n_items=8)
    params = [p for p in trained.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=3e-6)
    method.loss(trained, recorder.objective_batch, LossContext())[0].backward()
    optimizer.step()
    delta = [p.detach() - b for p, b in zip(params, before)]
    start = copy.deepcopy(trained)
    with torch.no_grad():
        for p, b in zip([p for p in start.parameters() if p.requires_grad], before):
            p.copy_(b)
    forward = directional_derivatives(start, per_item_nll, recorder.risk_batches["forget"], delta).double().mean()
    assert float(forward) == pytest.approx(g.realised_change["forget"], rel=1e-3)
    recorder = _recorder([g])
    recorder.every, recorder.total_steps = 1, 1  # the one recorded step stands for itself
    groups = recorder.summary(model.config.num_hidden_layers)["realised_groups"]
    mapping = block_groups(model.config.num_hidden_layers)
    for data_name in DATA_SETS:
        expected: dict[str, float] = {}
        for block, value in g.realised_blocks[data_name].items():
            expected[mapping[block]] = expected.get(mapping[block], 0.0) + value
        assert groups[data_name] == pytest.approx(expected)


def test_the_loop_hands_a_before_update_callback_the_update_of_the_step_it_measured() -> None:
    """``unlearn`` calls a before-update callback's ``step_taken`` right after the optimizer update of each step it
    measured (every 2 of 5 steps: 0, 2, 4), with that step's number: the parameters it sees then are the ones the
    next measurement starts from, and they differ from the ones measured."""
    from bench.run.train import unlearn
    from bench.specs.run import Budget

    class Snapshots:
        before_update = True

        def __init__(self) -> None:
            self.seen: list[tuple[str, int, torch.Tensor]] = []

        def __call__(self, model: torch.nn.Module, state: StepState) -> None:
            self.seen.append(("measured", state.step, model.lm_head.weight.detach().clone()))

        def step_taken(self, model: torch.nn.Module, state: StepState) -> None:
            self.seen.append(("taken", state.step, model.lm_head.weight.detach().clone()))

    callback = Snapshots()
    model = random_llama(0, init_std=0.1)
    unlearn(model, make_method("ga"), toy_sequences(1, FORGET_SHAPES), [], Budget(steps=5, lr=1e-3, batch_size=3,
                                                                                  callback_every=2),
            0, PAD, callbacks=[callback])
    assert [(kind, step) for kind, step, _ in callback.seen] == [
        ("measured", 0), ("taken", 0), ("measured", 2), ("taken", 2), ("measured", 4), ("taken", 4)]
    for (_, _, measured_at), (_, _, taken) in zip(callback.seen[::2], callback.seen[1::2]):
        assert not torch.equal(measured_at, taken)
    assert not torch.equal(callback.seen[1][2], callback.seen[2][2])  # step 1 moved the weights in between


def test_step_change_summary_scores_both_predictions_against_the_change_between_recorded_steps() -> None:
    """Recorded steps 0, 2, 5 of 7 (spans 2, 3, 2): realised = sum r_t span_t; measured = the risk after training
    minus the risk at step 0 (risks 1.0, 3.0, 6.5, end 9.0: intervals 2.0, 3.5, 2.5); relative errors of both
    predictions against it; correlations over the three intervals (scipy's pearsonr); per block group sums. Without
    the risks the measured change falls back to the one-step sum."""
    from scipy.stats import pearsonr

    def m(step: int, lr: float, e: float, r: float, change: float, risk: float) -> GEffect:
        return GEffect(step=step, lr=lr, loss=0.0, total={"forget": e}, blocks={"forget": {"head": e}},
                       realised_change={"forget": r}, measured_change={"forget": change}, risk={"forget": risk},
                       realised_blocks={"forget": {"layer0": r / 4, "head": 3 * r / 4}})

    rows = [m(0, 1e-3, -1.0, 0.5, 0.6, 1.0), m(2, 1e-3, -2.0, 1.0, 1.2, 3.0), m(5, 2e-3, -1.0, 2.0, 1.8, 6.5)]
    recorder = _recorder(rows)
    recorder.final_risk = {"forget": 9.0}
    summary = recorder.summary(n_layers=3)
    assert summary["realised_change"]["forget"] == pytest.approx(0.5 * 2 + 1.0 * 3 + 2.0 * 2)  # 8.0
    assert summary["measured_change"]["forget"] == pytest.approx(9.0 - 1.0)
    assert summary["one_step_change"]["forget"] == pytest.approx(0.6 * 2 + 1.2 * 3 + 1.8 * 2)  # 8.4
    paper = 1e-3 * 1.0 * 2 + 1e-3 * 2.0 * 3 + 2e-3 * 1.0 * 2  # sum of -lr e * span = 0.012
    agreement = summary["agreement"]["forget"]
    assert agreement["realised_error"] == pytest.approx(0.0)
    assert agreement["paper_error"] == pytest.approx(abs(paper - 8.0) / 8.0)
    intervals = [2.0, 3.5, 2.5]
    assert agreement["realised_corr"] == pytest.approx(pearsonr([1.0, 3.0, 4.0], intervals).statistic)
    assert agreement["paper_corr"] == pytest.approx(pearsonr([2e-3, 6e-3, 4e-3], intervals).statistic)
    assert summary["realised_groups"]["forget"] == pytest.approx({"shallow": 2.0, "deep": 6.0})
    without = _recorder([m(0, 1e-3, -1.0, 0.5, 0.6, 1.0), m(2, 1e-3, -2.0, 1.0, 1.2, 3.0)])
    assert without.summary(3)["measured_change"]["forget"] == pytest.approx(0.6 * 2 + 1.2 * 3)  # no final risk
    without.measurements[0].measured_change = {}
    without.measurements[1].measured_change = {}
    assert not {"realised_change", "measured_change", "agreement"} & set(without.summary(3))


# ----------------------------------------------------------------------------------------------- a real run


def test_recorded_run_writes_measurements_and_a_summary(store) -> None:
    """NPO on the mini task, 6 steps, callback every 3: measurements of the steps' own gradients at theta_0 and
    theta_3 (before those updates) with totals on the four sets, per-block values, per-instance values for at most
    16 forget items; the NPO weight of each measured step is recorded (1 at theta_0 = theta_ref)."""
    from bench.run.execute import execute
    from bench.run.runspec import make_run_spec
    from bench.specs.run import Budget

    spec = make_run_spec(MINI, "forget10", "npo", {}, Budget(steps=6, lr=1e-3, batch_size=8, callback_every=3),
                         seed=0)
    record = execute(spec, store)
    assert record.ok, record.error
    rows = store.measurements(spec.run_id)
    assert [r["step"] for r in rows] == [0, 3]
    for r in rows:
        assert set(r["total"]) == set(DATA_SETS)
        assert all(math.isfinite(v) for v in r["total"].values())
        for data_name in DATA_SETS:
            assert set(r["blocks"][data_name]) == BLOCKS
            assert sum(r["blocks"][data_name].values()) == pytest.approx(r["total"][data_name], rel=1e-9, abs=1e-12)
        assert set(r["per_instance"]) == {"forget", "retain"}
        assert all(0 < len(v) <= 16 for v in r["per_instance"].values())
        assert r["objective_norm"] > 0
    assert rows[0]["diagnostics"]["npo_weight"] == pytest.approx(1.0, abs=1e-5)  # theta_0 = theta_ref
    assert all(0 < r["diagnostics"]["npo_weight"] <= 2 for r in rows)
    summary = record.geffect
    assert summary.steps == [0, 3] and summary.finite is True
    assert set(summary.cumulative) == set(DATA_SETS)
    assert summary.cumulative["forget"] == pytest.approx(
        sum(r["lr"] * r["total"]["forget"] * 3 for r in rows))
    assert summary.npo_weight == {"first": rows[0]["diagnostics"]["npo_weight"],
                                  "last": rows[1]["diagnostics"]["npo_weight"]}
    assert set(summary.cumulative_groups["forget"]) <= {"shallow", "middle", "deep"}
    for r in rows:  # the update after each measured step (AdamW): the forget risk rose
        assert set(r["realised_change"]) == set(r["measured_change"]) == set(DATA_SETS)
        assert r["measured_change"]["forget"] > 0 and r["realised_change"]["forget"] > 0
    # measured between recorded steps: the risk after training minus at step 0, through the risk at step 3
    assert rows[1]["risk"]["forget"] > rows[0]["risk"]["forget"]
    assert summary.measured_change["forget"] == pytest.approx(summary.extra["final_risk"]["forget"]
                                                              - rows[0]["risk"]["forget"])
    assert summary.extra["final_risk"]["forget"] > rows[1]["risk"]["forget"]
    assert summary.one_step_change["forget"] == pytest.approx(sum(r["measured_change"]["forget"] * 3 for r in rows))
    assert summary.realised_change["forget"] == pytest.approx(sum(r["realised_change"]["forget"] * 3 for r in rows))
    assert set(summary.agreement["forget"]) == {"realised_error", "paper_error"}  # 2 steps: no correlation
    assert record.timings["geffect_seconds"] > 0
