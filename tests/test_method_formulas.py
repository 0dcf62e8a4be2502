"""Every objective's loss against the formula in its docstring, computed by hand in float64 from each unpadded
sequence's logits (no batching, no masks), on toy batches and tiny random Llamas; and the gradient identities
of the G-effect paper (arXiv 2502.19301): detached token weights, NPO = reweighted GA, NPO -> GA as beta -> 0."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch

from bench.data.tokenize import Encoded, collate
from bench.methods.base import LossContext, ReferenceModel, UnlearnBatch, make_method, search_space_of
from bench.methods.rmu import control_vector
from bench.registry import METHODS
from bench.specs.papers import ARXIV_ID

from .test_methods import FORGET_SHAPES, PAD, RETAIN_SHAPES, answer_logprobs, tiny_llama, toy_sequences

TOL = {"rel": 1e-6, "abs": 1e-6}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


def answer_logits(model: torch.nn.Module, e: Encoded) -> torch.Tensor:
    """Logits [T, V] (float64) at the positions predicting the T answer tokens of one sequence run alone."""
    logits = model(input_ids=torch.tensor([e.ids])).logits[0].double()
    return logits[e.n_prompt - 1: len(e.ids) - 1]


def answer_targets(e: Encoded) -> torch.Tensor:
    return torch.tensor(e.answer_ids)


def idk_sequences(forget: list[Encoded], seed: int) -> list[Encoded]:
    """The forget prompts with other (random) answers: the "I don't know" rows aligned with ``forget``."""
    gen = torch.Generator().manual_seed(seed)
    return [Encoded(e.ids[: e.n_prompt] + tuple(torch.randint(3, 50, (4,), generator=gen).tolist()), e.n_prompt)
            for e in forget]


def loss_of(name: str, params: dict, model, forget, retain=None, idk=None, reference=None) -> tuple[float, dict]:
    batch = UnlearnBatch(collate(forget, PAD), collate(retain, PAD) if retain else None,
                         collate(idk, PAD) if idk else None)
    loss, diag = make_method(name, params).loss(model, batch, LossContext(reference=reference))
    return loss.item(), diag


def models():
    return tiny_llama(0), tiny_llama(1)


# --------------------------------------------------------------------------------------- token-weighted ascent


def weighted_ascent_by_hand(model, seqs, weight_fn, cap: float = 1.0) -> float:
    """mean_rows (1/T_b) sum_i c_i w_i log p_i, c_i keeping the ceil(cap * N) lowest-NLL tokens of the batch."""
    logps = [answer_logprobs(model, e) for e in seqs]
    weights = [weight_fn(b, lp) for b, lp in enumerate(logps)]
    flat = torch.cat([-lp for lp in logps])
    threshold = flat.sort().values[math.ceil(cap * flat.numel()) - 1]
    rows = [(w * lp * (-lp <= threshold)).sum() / lp.numel() for w, lp in zip(weights, logps)]
    return float(torch.stack(rows).mean())


def test_ga_with_likelihood_capping() -> None:
    """GA with cap q: L = mean_rows (1/T_b) sum_{i kept} log p_i, kept = the ceil(q N) lowest-NLL answer tokens;
    q = 1 is plain GA, and capping changes the value."""
    model, _ = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    with torch.no_grad():
        full = weighted_ascent_by_hand(model, seqs, lambda b, lp: 1.0)
        capped = weighted_ascent_by_hand(model, seqs, lambda b, lp: 1.0, cap=0.5)
    assert loss_of("ga", {}, model, seqs)[0] == pytest.approx(full, **TOL)
    assert loss_of("ga", {"cap": 0.5}, model, seqs)[0] == pytest.approx(capped, **TOL)
    assert abs(full - capped) > 1e-3


def test_wga_weights_are_p_to_the_alpha() -> None:
    """WGA: L = mean_rows (1/T) sum_i p_i^alpha log p_i."""
    model, _ = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    with torch.no_grad():
        expected = weighted_ascent_by_hand(model, seqs, lambda b, lp: lp.exp() ** 2.0)
    value, diag = loss_of("wga", {"alpha": 2.0}, model, seqs)
    assert value == pytest.approx(expected, **TOL)
    assert 0 < diag["weight_min"] <= diag["weight_mean"] <= diag["weight_max"] <= 1


def test_tnpo_and_wtnpo_token_weights() -> None:
    """TNPO: w_i = 2 p_i^beta / (p_i^beta + p_ref,i^beta); WTNPO: that times p_i^alpha."""
    model, ref_model = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    beta, alpha = 0.7, 1.5
    with torch.no_grad():
        ref_lps = [answer_logprobs(ref_model, e) for e in seqs]

        def tnpo(b, lp):
            p, p_ref = lp.exp(), ref_lps[b].exp()
            return 2 * p**beta / (p**beta + p_ref**beta)

        expected_t = weighted_ascent_by_hand(model, seqs, tnpo)
        expected_wt = weighted_ascent_by_hand(model, seqs, lambda b, lp: tnpo(b, lp) * lp.exp() ** alpha)
    ref = ReferenceModel(ref_model)
    assert loss_of("tnpo", {"beta": beta}, model, seqs, reference=ref)[0] == pytest.approx(expected_t, **TOL)
    assert loss_of("wtnpo", {"beta": beta, "alpha": alpha}, model, seqs,
                   reference=ref)[0] == pytest.approx(expected_wt, **TOL)


def test_satimp_weights() -> None:
    """SatImp: w_i = p_i^b1 (1 - p_i)^b2."""
    model, _ = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    with torch.no_grad():
        expected = weighted_ascent_by_hand(model, seqs, lambda b, lp: lp.exp() ** 3.0 * (1 - lp.exp()) ** 0.5)
    assert loss_of("satimp", {"beta1": 3.0, "beta2": 0.5}, model, seqs)[0] == pytest.approx(expected, **TOL)


# ------------------------------------------------------------------------------------------ sequence objectives


def test_simnpo_formula() -> None:
    """SimNPO: L = -(2/beta) mean_rows log sigmoid(-(beta/|a|) log p(a|q) - delta)."""
    model, _ = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    beta, delta = 2.5, 0.7
    with torch.no_grad():
        terms = [torch.nn.functional.logsigmoid(-(beta / len(e.answer_ids)) * answer_logprobs(model, e).sum() - delta)
                 for e in seqs]
        expected = float(-(2 / beta) * torch.stack(terms).mean())
    assert loss_of("simnpo", {"beta": beta, "delta": delta}, model, seqs)[0] == pytest.approx(expected, **TOL)


def test_idkpo_is_the_nll_of_idk_answers() -> None:
    """IdkPO (regulariser off): L = mean_rows NLL(idk | q); the forget answers play no part."""
    model, _ = models()
    forget = toy_sequences(1, FORGET_SHAPES)
    idk = idk_sequences(forget, 7)
    with torch.no_grad():
        expected = float(torch.stack([-answer_logprobs(model, e).mean() for e in idk]).mean())
    assert loss_of("idkpo", {"retain_loss": "none"}, model, forget, idk=idk)[0] == pytest.approx(expected, **TOL)


def test_idkdpo_formula() -> None:
    """IdkDPO: L = -(2/beta) mean log sigmoid(beta ((s(idk) - s_ref(idk)) - (s(a) - s_ref(a)))), s = sum log p."""
    model, ref_model = models()
    forget = toy_sequences(1, FORGET_SHAPES)
    idk = idk_sequences(forget, 7)
    beta = 0.5

    def s(m, e):
        return answer_logprobs(m, e).sum()

    with torch.no_grad():
        margins = torch.stack([beta * ((s(model, w) - s(ref_model, w)) - (s(model, lo) - s(ref_model, lo)))
                               for w, lo in zip(idk, forget)])
        expected = float(-(2 / beta) * torch.nn.functional.logsigmoid(margins).mean())
    value, diag = loss_of("idkdpo", {"beta": beta, "retain_loss": "none"}, model, forget, idk=idk,
                          reference=ReferenceModel(ref_model))
    assert value == pytest.approx(expected, **TOL)
    assert diag["preference_accuracy"] == pytest.approx(float((margins > 0).double().mean()))


# --------------------------------------------------------------------------------------- distribution objectives


def test_undial_distils_adjusted_reference_logits() -> None:
    """UNDIAL: L = mean_rows (1/T) sum_i -sum_v t_i(v) log p_theta,i(v), t_i = softmax(z_ref,i - gamma 1[v = a_i])."""
    model, ref_model = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    gamma = 3.0
    with torch.no_grad():
        rows = []
        for e in seqs:
            z_ref = answer_logits(ref_model, e).clone()
            z_ref[torch.arange(len(e.answer_ids)), answer_targets(e)] -= gamma
            teacher = torch.softmax(z_ref, -1)
            rows.append(-(teacher * torch.log_softmax(answer_logits(model, e), -1)).sum(-1).mean())
        expected = float(torch.stack(rows).mean())
    value, _ = loss_of("undial", {"strength": gamma}, model, seqs, reference=ReferenceModel(ref_model))
    assert value == pytest.approx(expected, **TOL)


def test_ceu_is_cross_entropy_to_the_own_distribution_without_the_answer() -> None:
    """CE-U: L = mean_rows (1/T) sum_i -sum_v q_i(v) log p_i(v), q_i = softmax(z_i with z_i[a_i] = -inf); its
    logit gradient is p - q (so q is treated as a constant)."""
    model, _ = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    with torch.no_grad():
        rows = []
        for e in seqs:
            z = answer_logits(model, e)
            masked = z.clone()
            masked[torch.arange(len(e.answer_ids)), answer_targets(e)] = float("-inf")
            rows.append(-(torch.softmax(masked, -1) * torch.log_softmax(z, -1)).sum(-1).mean())
        expected = float(torch.stack(rows).mean())
    assert loss_of("ceu", {}, model, seqs)[0] == pytest.approx(expected, **TOL)
    # Gradient w.r.t. the logits of one position: p - q.
    z = torch.randn(1, 1, 7, dtype=torch.float64, requires_grad=True)
    from bench.methods.ceu import ceu_token_loss

    target = torch.tensor([[3]])
    ceu_token_loss(z, target).sum().backward()
    masked = z.detach().clone()
    masked[0, 0, 3] = float("-inf")
    torch.testing.assert_close(z.grad, torch.softmax(z.detach(), -1) - torch.softmax(masked, -1))


def test_kl_regulariser_on_any_objective() -> None:
    """GA+KL and NPO+KL: L = L_forget + lambda * mean_rows (1/T) sum_i KL(p_ref,i || p_theta,i) on retain tokens;
    GD: L = GA + lambda * NLL_retain. The regulariser is one option of every method, not a copy."""
    model, ref_model = models()
    forget, retain = toy_sequences(1, FORGET_SHAPES), toy_sequences(2, RETAIN_SHAPES)
    lam = 0.7
    with torch.no_grad():
        kls = []
        for e in retain:
            lp_ref = torch.log_softmax(answer_logits(ref_model, e), -1)
            lp = torch.log_softmax(answer_logits(model, e), -1)
            kls.append((lp_ref.exp() * (lp_ref - lp)).sum(-1).mean())
        kl = float(torch.stack(kls).mean())
        ga = weighted_ascent_by_hand(model, forget, lambda b, lp: 1.0)
        retain_nll = float(torch.stack([-answer_logprobs(model, e).mean() for e in retain]).mean())
    ref = ReferenceModel(ref_model)
    value, diag = loss_of("ga", {"retain_loss": "kl", "retain_weight": lam}, model, forget, retain, reference=ref)
    assert value == pytest.approx(ga + lam * kl, **TOL)
    assert diag["retain_kl"] == pytest.approx(kl, **TOL)
    assert loss_of("gd", {"retain_weight": lam}, model, forget, retain)[0] == pytest.approx(ga + lam * retain_nll,
                                                                                            **TOL)
    npo_alone = loss_of("npo", {"beta": 0.3}, model, forget, reference=ref)[0]
    npo_kl = loss_of("npo", {"beta": 0.3, "retain_loss": "kl", "retain_weight": lam}, model, forget, retain,
                     reference=ref)[0]
    assert npo_kl == pytest.approx(npo_alone + lam * kl, **TOL)
    for name in ("ga", "npo", "wga", "tnpo", "simnpo", "satimp", "ceu", "undial"):
        method = make_method(name, {"retain_loss": "kl"})
        assert method.needs_reference and method.needs_retain, name
    assert not make_method("ga").needs_reference and not make_method("ga").needs_retain


def test_rmu_formula_and_frozen_parameters() -> None:
    """RMU: L = mean_{forget positions} (1/d) ||h_l - c u||^2 + alpha mean_{retain tokens} (1/d) ||h_l - h_l^ref||^2,
    forget positions = those predicting an answer token; prepare() leaves only ``trainable`` parameters trainable."""
    model, ref_model = models()
    forget, retain = toy_sequences(1, FORGET_SHAPES), toy_sequences(2, RETAIN_SHAPES)
    layer, coef, alpha = 0, 5.0, 3.0
    with torch.no_grad():
        def h(m, e):
            return m(input_ids=torch.tensor([e.ids]), output_hidden_states=True).hidden_states[layer + 1][0].double()

        target = control_vector(32, coef, 0).double()
        f_sq = torch.cat([((h(model, e)[e.n_prompt - 1: len(e.ids) - 1] - target) ** 2).mean(-1) for e in forget])
        r_sq = torch.cat([((h(model, e) - h(ref_model, e)) ** 2).mean(-1) for e in retain])
        expected = float(f_sq.mean() + alpha * r_sq.mean())
    assert control_vector(32, coef, 0).norm().item() == pytest.approx(coef, rel=1e-6)
    params = {"layer": layer, "steering_coef": coef, "alpha": alpha, "trainable": r"layers\.0\.mlp\."}
    value, _ = loss_of("rmu", params, model, forget, retain, reference=ReferenceModel(ref_model))
    assert value == pytest.approx(expected, **TOL)
    method = make_method("rmu", params)
    method.prepare(model, LossContext())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("model.layers.0.mlp.") for n in trainable)
    with pytest.raises(ValueError, match="matches no parameter"):
        make_method("rmu", {"trainable": "nothing_like_this"}).prepare(tiny_llama(0), LossContext())


def test_task_vector_negates_the_fine_tuning_delta() -> None:
    """Task vector: descent on forget NLL, then theta = theta_0 - lambda (theta_ft - theta_0)."""
    model, _ = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    method = make_method("task_vector", {"scale": 2.0})
    theta0 = copy.deepcopy(model.state_dict())
    method.prepare(model, LossContext())
    loss, _ = method.loss(model, UnlearnBatch(collate(seqs, PAD)), LossContext())
    with torch.no_grad():
        assert loss.item() == pytest.approx(float(torch.stack([-answer_logprobs(model, e).mean()
                                                               for e in seqs]).mean()), **TOL)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    fine_tuned = copy.deepcopy(model.state_dict())
    method.finalize(model, LossContext())
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, theta0[name] - 2.0 * (fine_tuned[name] - theta0[name]))


# ----------------------------------------------------------------------------------------- gradient identities


def grads(loss: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)])


@pytest.mark.parametrize("name", ["wga", "tnpo", "wtnpo", "satimp"])
def test_token_weights_are_detached(name: str) -> None:
    """grad L = mean_rows (1/T) sum_i w_i grad log p_i with w_i held constant: the gradient equals that of the
    weighted log-likelihood with the weights computed first and detached, and differs from differentiating
    through the weights."""
    model, ref_model = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    batch = UnlearnBatch(collate(seqs, PAD))
    ctx = LossContext(reference=ReferenceModel(ref_model))
    method = make_method(name)
    got = grads(method.loss(model, batch, ctx)[0], model)
    from bench.methods.base import token_logprobs

    logp, mask = token_logprobs(model, batch.forget)
    with torch.no_grad():  # the method's own weights, recomputed from detached log-probs
        _, diag = method.loss(model, batch, ctx)
    p = logp.exp()
    if name == "wga":
        live = p ** method.params.alpha
    elif name == "satimp":
        live = p ** method.params.beta1 * (1 - p) ** method.params.beta2
    else:
        ref = ctx.reference.token_logprobs(batch.forget, "forget")
        live = 2 * torch.sigmoid(method.params.beta * (logp - ref))
        if name == "wtnpo":
            live = live * p ** method.params.alpha
    rows = lambda w: ((w * logp * mask).sum(-1) / mask.sum(-1)).mean()  # noqa: E731
    detached = grads(rows(live.detach()), model)
    through = grads(rows(live), model)
    torch.testing.assert_close(got, detached, rtol=1e-5, atol=1e-7)
    assert (got - through).norm() > 1e-3 * got.norm()


def test_tnpo_gradient_is_tokenwise_npo_gradient() -> None:
    """TNPO's gradient equals that of the token-wise NPO loss (1/T) sum_i (2/beta) softplus(beta (log p_i -
    log p_ref,i)) per row, since d/dx (2/beta) softplus(beta (x - c)) = 2 sigmoid(beta (x - c))."""
    model, ref_model = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    batch = UnlearnBatch(collate(seqs, PAD))
    ref = ReferenceModel(ref_model)
    beta = 0.8
    got = grads(make_method("tnpo", {"beta": beta}).loss(model, batch, LossContext(reference=ref))[0], model)
    from bench.methods.base import token_logprobs

    logp, mask = token_logprobs(model, batch.forget)
    ratio = logp - ref.token_logprobs(batch.forget, "forget")
    npo_tokens = (2 / beta) * torch.nn.functional.softplus(beta * ratio)
    expected = grads(((npo_tokens * mask).sum(-1) / mask.sum(-1)).mean(), model)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_npo_gradient_direction_tends_to_ga_as_beta_goes_to_zero() -> None:
    """w = 2 sigmoid(beta r) -> 1 as beta -> 0, so grad L_NPO -> mean_rows grad sum_i log p_i, which for equal answer
    lengths T is T * grad L_GA: the cosine to GA's gradient tends to 1 (and is visibly below 1 at large beta)."""
    model, ref_model = models()
    seqs = toy_sequences(4, ((3, 4), (2, 4), (4, 4)))
    batch = UnlearnBatch(collate(seqs, PAD))
    ref = ReferenceModel(ref_model)
    ga = grads(make_method("ga").loss(model, batch, LossContext())[0], model)

    def cosine(beta: float) -> float:
        g = grads(make_method("npo", {"beta": beta}).loss(model, batch, LossContext(reference=ref))[0], model)
        return float(torch.nn.functional.cosine_similarity(g, ga, dim=0))

    small, large = cosine(1e-4), cosine(5.0)
    assert small > 1 - 1e-6
    assert large < small - 1e-3


# ---------------------------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("name", sorted(set(METHODS.names()) - {"nan_loss", "raise_loss"}))
def test_every_method_declares_paper_formula_and_search_space(name: str) -> None:
    """Each registered method states its loss in its own docstring (an ``L = ...`` formula), cites a paper by arXiv
    id, and declares a search space whose every field exists and holds the field's default."""
    cls = METHODS.get(name)
    if not cls.__module__.startswith("bench."):
        pytest.skip("plug-in from a test")
    doc = cls.__dict__.get("__doc__") or ""  # its own, not a base class's
    assert re.search(r"(?<![\w/])L = \S", doc), (name, doc[:80])
    assert ARXIV_ID.search(cls.paper or ""), (name, cls.paper)
    space = search_space_of(cls.Params)
    assert space, name
    instance = make_method(name)
    for field, values in space.items():
        assert hasattr(instance.params, field) and values, (name, field)
        default = getattr(instance.params, field)
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and isinstance(default, (int, float)) and not isinstance(default, bool):
            assert min(numbers) <= default <= max(numbers), (name, field, default, values)
        else:
            assert default in list(values), (name, field, default, values)


# ------------------------------------------------------------------------------------- baselines of issue 19


def test_pdu_lagrangian_formula() -> None:
    """PDU: L = mean_rows (1/T) sum_i (max_v z_i(v) - mean_v z_i(v))^2 + lambda * (mean_rows NLL_retain - epsilon),
    z_i the logits at the positions predicting the answer tokens; lambda is ``dual_init`` before any step."""
    model, _ = models()
    forget, retain = toy_sequences(1, FORGET_SHAPES), toy_sequences(2, RETAIN_SHAPES)
    lam, eps = 3.0, 0.2
    with torch.no_grad():
        flattening = torch.stack([((answer_logits(model, e).max(-1).values - answer_logits(model, e).mean(-1)) ** 2)
                                  .mean() for e in forget]).mean()
        retain_nll = torch.stack([-answer_logprobs(model, e).mean() for e in retain]).mean()
        expected = float(flattening + lam * (retain_nll - eps))
    value, diag = loss_of("pdu", {"dual_init": lam, "epsilon": eps}, model, forget, retain)
    assert value == pytest.approx(expected, **TOL)
    assert diag["retain_nll"] == pytest.approx(float(retain_nll), **TOL) and diag["dual"] == lam


def _unlearn_toy(method, steps: int, **extra):
    """``steps`` training steps of ``method`` on a tiny random Llama over the toy forget and retain rows."""
    from bench.run.train import unlearn
    from bench.specs.run import Budget

    model, ref_model = models()
    forget, retain = toy_sequences(1, FORGET_SHAPES), toy_sequences(2, RETAIN_SHAPES)
    reference = ReferenceModel(ref_model) if method.needs_reference else None
    return model, unlearn(model, method, forget, retain, Budget(steps=steps, lr=1e-3, batch_size=3), 0, PAD,
                          reference, **extra)


def test_pdu_dual_variable_rises_while_violated_and_falls_to_zero_when_satisfied() -> None:
    """lambda <- max(0, lambda + eta (NLL_retain - epsilon)) after every training step: with epsilon below the
    retain NLL (violated) lambda rises by eta * (NLL - epsilon) > 0 each step; with epsilon far above it (satisfied)
    it falls and stops at 0. Calls of ``loss`` outside the loop (the G-effect measurement) leave it be, and every
    run starts again from ``dual_init``."""
    violated = make_method("pdu", {"epsilon": 1e-3, "dual_init": 1.0, "dual_step": 0.5})
    _, result = _unlearn_toy(violated, 3)
    duals = [d["dual"] for d in result.diagnostics] + [violated.dual]
    retain_nll = [d["retain_nll"] for d in result.diagnostics]
    assert all(b > a for a, b in zip(duals, duals[1:])), duals
    for before, after, nll in zip(duals, duals[1:], retain_nll):
        assert after == pytest.approx(before + 0.5 * (nll - 1e-3))
    satisfied = make_method("pdu", {"epsilon": 50.0, "dual_init": 30.0, "dual_step": 0.5})
    _, result = _unlearn_toy(satisfied, 3)
    duals = [d["dual"] for d in result.diagnostics] + [satisfied.dual]
    assert duals[0] == 30.0 and duals[1] < duals[0] and duals[2] == duals[3] == 0.0, duals
    before = violated.dual
    loss_batch = UnlearnBatch(collate(toy_sequences(1, FORGET_SHAPES), PAD), collate(toy_sequences(2, RETAIN_SHAPES),
                                                                                      PAD))
    violated.loss(tiny_llama(0), loss_batch, LossContext())
    assert violated.dual == before
    violated.prepare(tiny_llama(0), LossContext())
    assert violated.dual == 1.0


def test_pdu_dual_warmup_holds_lambda() -> None:
    """No dual update before ``dual_warmup`` optimizer steps."""
    method = make_method("pdu", {"epsilon": 1e-3, "dual_warmup": 2})
    _, result = _unlearn_toy(method, 3)
    assert [d["dual"] for d in result.diagnostics] == [1.0, 1.0, 1.0] and method.dual > 1.0


def test_altpo_formula() -> None:
    """AltPO: L = -(2/beta) mean log sigmoid(beta ((s(a') - s_ref(a')) - (s(a) - s_ref(a)))) + lambda NLL_retain,
    a' the alternate answer, s = sum of answer-token log-probs."""
    model, ref_model = models()
    forget, retain = toy_sequences(1, FORGET_SHAPES), toy_sequences(2, RETAIN_SHAPES)
    alternate = idk_sequences(forget, 11)
    beta, lam = 0.4, 1.5

    def s(m, e):
        return answer_logprobs(m, e).sum()

    with torch.no_grad():
        margins = torch.stack([beta * ((s(model, w) - s(ref_model, w)) - (s(model, lo) - s(ref_model, lo)))
                               for w, lo in zip(alternate, forget)])
        retain_nll = torch.stack([-answer_logprobs(model, e).mean() for e in retain]).mean()
        expected = float(-(2 / beta) * torch.nn.functional.logsigmoid(margins).mean() + lam * retain_nll)
    batch = UnlearnBatch(collate(forget, PAD), collate(retain, PAD), alternate=collate(alternate, PAD))
    method = make_method("altpo", {"beta": beta, "retain_weight": lam})
    value, diag = method.loss(model, batch, LossContext(reference=ReferenceModel(ref_model)))
    assert value.item() == pytest.approx(expected, **TOL)
    assert method.needs_alternate and method.needs_reference and method.needs_retain


def tempered_logprobs(model, e: Encoded, tau: float) -> torch.Tensor:
    """log softmax(z / tau)[a_i] at the answer positions of one sequence, in float64."""
    return torch.log_softmax(answer_logits(model, e) / tau, -1).gather(-1, answer_targets(e).unsqueeze(-1))[:, 0]


@pytest.mark.parametrize("name", ["ga", "wga", "tnpo", "satimp", "npo", "simnpo"])
def test_temperature_one_is_the_plain_loss_and_tau_tempers_the_logits(name: str) -> None:
    """temperature T = 1 gives the plain objective bit for bit; T = 2.5 equals the objective's formula on
    log softmax(z / T) (GA: mean_rows (1/T_b) sum_i log p_i; NPO: (2/beta) softplus(beta (sum log p - log p_ref));
    SimNPO: (2/beta) softplus((beta/|a|) sum log p); the token-weighted ones: weights from the tempered p too)."""
    model, ref_model = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    ref = ReferenceModel(ref_model)
    assert loss_of(name, {}, model, seqs, reference=ref)[0] == loss_of(name, {"temperature": 1.0}, model, seqs,
                                                                       reference=ref)[0]
    tau = 2.5
    method = make_method(name, {"temperature": tau})
    with torch.no_grad():
        lps = [tempered_logprobs(model, e, tau) for e in seqs]
        ref_lps = [answer_logprobs(ref_model, e) for e in seqs]
        if name == "npo":
            beta = method.params.beta
            expected = torch.stack([(2 / beta) * torch.nn.functional.softplus(beta * (lp.sum() - r.sum()))
                                    for lp, r in zip(lps, ref_lps)]).mean()
        elif name == "simnpo":
            beta = method.params.beta
            expected = torch.stack([(2 / beta) * torch.nn.functional.softplus(beta / len(lp) * lp.sum())
                                    for lp in lps]).mean()
        else:
            p = [lp.exp() for lp in lps]
            weight = {"ga": lambda b: 1.0, "wga": lambda b: p[b],
                      "satimp": lambda b: p[b] ** 5.0 * (1 - p[b]),
                      "tnpo": lambda b: 2 * torch.sigmoid(0.5 * (lps[b] - ref_lps[b]))}[name]
            expected = torch.stack([(weight(b) * lp).mean() for b, lp in enumerate(lps)]).mean()
    assert loss_of(name, {"temperature": tau}, model, seqs, reference=ref)[0] == pytest.approx(float(expected), **TOL)
    plain = loss_of(name, {}, model, seqs, reference=ref)[0]
    assert abs(float(expected) - plain) > 1e-3 * abs(plain)  # the temperature changes the value


def test_rectified_gradient_never_conflicts_with_the_retain_gradient() -> None:
    """GRU: g' = g_u if g_u . g_r >= 0, else g_u - (g_u . g_r / ||g_r||^2) g_r; so g' . g_r >= 0 always (0 after a
    projection, up to round-off), and a non-conflicting g_u is kept as is."""
    from bench.run.train import rectified

    gen = torch.Generator().manual_seed(0)
    projections = 0
    for _ in range(200):
        g_u, g_r = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen,
                                                                                     dtype=torch.float64)
        new, projected = rectified(g_u, g_r)
        assert torch.dot(new, g_r) >= -1e-12 * g_u.norm() * g_r.norm()
        if torch.dot(g_u, g_r) >= 0:
            assert not projected and torch.equal(new, g_u)
        else:
            projections += 1
            assert projected and torch.dot(new, g_r).abs() < 1e-10
            torch.testing.assert_close(new + (torch.dot(g_u, g_r) / g_r.norm() ** 2) * g_r, g_u)
    assert 50 < projections < 150


def test_gru_rectifies_the_step_against_a_moving_average_of_retain_gradients() -> None:
    """In the loop: ``rectify: gru`` on NPO records the cosine of g_u and the average g_r each step; a rectifier
    applied to hand-set gradients leaves .grad with a non-negative inner product with
    g_r = gamma g_r(step) + (1 - gamma) g_r(before)."""
    from bench.run.train import GradientRectifier

    method = make_method("npo", {"rectify": "gru"})
    assert method.needs_retain
    _, result = _unlearn_toy(method, 3)
    assert all("gru_cosine" in d and d["gru_projected"] in (0.0, 1.0) for d in result.diagnostics)
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    rectifier = GradientRectifier(0.8)
    rectifier.average = torch.tensor([1.0, 0, 0, 0, 0, 0, 0])
    rectifier.step_grad = torch.tensor([0.0, 1.0, 0, 0, 0, 0, 0])
    params[0].grad, params[1].grad = torch.tensor([-1.0, -2.0, 3.0]), torch.ones(2, 2)
    diag = rectifier.apply(params)
    g_r = torch.tensor([0.2, 0.8, 0, 0, 0, 0, 0])
    torch.testing.assert_close(rectifier.average, g_r)
    g = torch.cat([params[0].grad, params[1].grad.flatten()])
    assert diag["gru_projected"] == 1.0 and torch.dot(g, g_r).abs() < 1e-6
    g_u = torch.tensor([-1.0, -2.0, 3.0, 1, 1, 1, 1])
    torch.testing.assert_close(g, g_u - torch.dot(g_u, g_r) / torch.dot(g_r, g_r) * g_r)


def test_sam_steps_with_the_gradient_at_the_perturbed_point() -> None:
    """SAM: the gradient added is grad L_f(theta + rho g / ||g||) (g = grad L_f(theta)), computed here on a copy of
    the model moved by hand, plus grad R(theta) of the retain term; the weights are restored bit for bit."""
    from bench.run.train import sharpness_aware

    model, _ = models()
    forget, retain = toy_sequences(1, FORGET_SHAPES), toy_sequences(2, RETAIN_SHAPES)
    batch = UnlearnBatch(collate(forget, PAD), collate(retain, PAD))
    rho, lam = 0.05, 0.7
    method = make_method("ga", {"sam_rho": rho, "retain_loss": "nll", "retain_weight": lam})
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = list(model.parameters())
    value, _ = sharpness_aware(model, method, batch, LossContext(), params, rho, grad_accum=2)
    got = torch.cat([p.grad.flatten() for p in params])
    assert all(torch.equal(p, theta[n]) for n, p in model.named_parameters())
    moved = copy.deepcopy(model)
    plain = make_method("ga")
    g = grads(plain.loss(moved, batch, LossContext())[0], moved)
    with torch.no_grad():
        offset = 0
        for p in moved.parameters():
            p += rho * g[offset: offset + p.numel()].view_as(p) / g.norm()
            offset += p.numel()
    at_perturbed = grads(plain.loss(moved, batch, LossContext())[0], moved)
    retain_grad = grads(lam * torch.stack([-answer_logprobs(model, e).mean() for e in retain]).mean().float(), model)
    torch.testing.assert_close(got, (at_perturbed + retain_grad) / 2, rtol=1e-5, atol=1e-7)
    assert (at_perturbed - g).norm() > 1e-4 * g.norm()  # the perturbation moved the gradient
    assert value == pytest.approx(loss_of("ga", {"retain_loss": "nll", "retain_weight": lam}, model, forget,
                                          retain)[0], **TOL)


def test_new_options_at_their_defaults_keep_every_run_id() -> None:
    """rectify, gru_gamma, sam_rho and temperature enter a run's hyper-parameters (and id) only when set."""
    from bench.methods.base import full_hparams
    from bench.run.runspec import make_run_spec
    from bench.specs.run import Budget

    from .conftest import MINI

    budget = Budget(steps=4, lr=5e-4, batch_size=8)
    assert set(full_hparams(make_method("ga"))) == {"retain_loss", "retain_weight", "cap"}
    plain = make_run_spec(MINI, "forget10", "npo", {}, budget, 0).run_id
    spelled = make_run_spec(MINI, "forget10", "npo", {"temperature": 1.0, "rectify": "none", "sam_rho": 0.0,
                                                      "gru_gamma": 0.8}, budget, 0).run_id
    assert plain == spelled
    for params in ({"temperature": 2.0}, {"rectify": "gru"}, {"sam_rho": 0.01}, {"rectify": "gru", "gru_gamma": 0.5}):
        assert make_run_spec(MINI, "forget10", "npo", params, budget, 0).run_id != plain, params
    with pytest.raises(Exception, match="gru_gamma: only used with rectify: gru"):
        make_method("npo", {"gru_gamma": 0.5})


def test_random_labels_plug_in_is_the_nll_of_fixed_random_tokens() -> None:
    """The random-label test method (``tests/plugins/random_labels.py``): L = mean_rows (1/T_b) sum_i -log p(r_i),
    with r_i drawn uniformly from the vocabulary by a generator seeded per item, computed here by hand with
    ``torch.nn.functional.cross_entropy`` on each unpadded sequence; the labels are the same at every call and for
    the same item in another batch order, and differ between items."""
    from .conftest import PLUGINS

    if "random_labels" not in METHODS:
        METHODS.load_plugin_file(str(PLUGINS / "random_labels.py"))
    model, _ = models()
    seqs = toy_sequences(1, FORGET_SHAPES)
    vocab = model.config.vocab_size

    def drawn(item: int, n: int) -> torch.Tensor:
        return torch.randint(vocab, (n,), generator=torch.Generator().manual_seed(item))

    with torch.no_grad():
        by_hand = float(torch.stack([torch.nn.functional.cross_entropy(
            answer_logits(model, e), drawn(b, len(e.answer_ids))) for b, e in enumerate(seqs)]).mean())
        value = loss_of("random_labels", {}, model, seqs)[0]
        assert value == pytest.approx(by_hand, **TOL)
        assert loss_of("random_labels", {}, model, seqs)[0] == value
        assert loss_of("random_labels", {"seed": 1}, model, seqs)[0] != pytest.approx(value, **TOL)
    labels = [drawn(b, 4) for b in range(len(seqs))]
    assert any(not torch.equal(labels[0], other) for other in labels[1:])
