"""Unlearning objectives against their formulas (REFERENCE.md), computed by hand from the logits of each unpadded
sequence with torch.log_softmax, on toy batches and tiny random Llamas (no training)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from bench.data.tokenize import Encoded, TokenBatch, collate
from bench.methods.base import LossContext, ReferenceModel, UnlearnBatch, make_method
from bench.registry import METHODS, RegistryError
from bench.specs.mapping import SpecError

from .conftest import random_llama

VOCAB = 50
PAD = 0


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


def tiny_llama(seed: int):
    return random_llama(seed, init_std=0.1)


def toy_sequences(seed: int, shapes: tuple[tuple[int, int], ...]) -> list[Encoded]:
    """Random ``[BOS] prompt answer`` sequences with (prompt length incl. BOS, answer length) from ``shapes``;
    different lengths so the collated batch is padded."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n_prompt, n_answer in shapes:
        body = torch.randint(3, VOCAB, (n_prompt - 1 + n_answer,), generator=gen).tolist()
        out.append(Encoded(tuple([1, *body]), n_prompt))
    return out


FORGET_SHAPES = ((4, 3), (2, 5), (5, 2))
RETAIN_SHAPES = ((3, 4), (3, 2), (6, 3), (2, 1))


def answer_logprobs(model: torch.nn.Module, e: Encoded) -> torch.Tensor:
    """log p(a_i | q, a_<i) for the answer tokens of one sequence, run alone (no padding), in float64."""
    logits = model(input_ids=torch.tensor([e.ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(e.ids[e.n_prompt:])
    return logp[e.n_prompt - 1: len(e.ids) - 1].gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def mean_nll_by_hand(model: torch.nn.Module, seqs: list[Encoded]) -> torch.Tensor:
    """mean over rows of NLL(a) = -(1/T) sum_i log p_i."""
    return torch.stack([-answer_logprobs(model, e).mean() for e in seqs]).mean()


def forget_batch(seqs: list[Encoded]) -> UnlearnBatch:
    return UnlearnBatch(forget=collate(seqs, PAD))


# --------------------------------------------------------------------------------------------------- GA, GD


def test_collate_masks_prompt_and_padding() -> None:
    """labels = ids on answer positions, -100 on prompt and padding; attention 1 on real tokens only."""
    seqs = toy_sequences(0, FORGET_SHAPES)
    batch = collate(seqs, PAD)
    assert isinstance(batch, TokenBatch) and batch.input_ids.shape == (3, 7)
    for row, e in enumerate(seqs):
        labels = batch.labels[row].tolist()
        assert labels[: e.n_prompt] == [-100] * e.n_prompt
        assert labels[e.n_prompt: len(e.ids)] == list(e.answer_ids)
        assert labels[len(e.ids):] == [-100] * (7 - len(e.ids))
        assert batch.attention_mask[row].tolist() == [1] * len(e.ids) + [0] * (7 - len(e.ids))


def test_ga_loss_is_minus_mean_answer_nll() -> None:
    """GA: L = -mean_rows[ -(1/T) sum_i log p_i ] over answer tokens only (prompt and padding excluded)."""
    model = tiny_llama(0)
    seqs = toy_sequences(1, FORGET_SHAPES)
    loss, diag = make_method("ga").loss(model, forget_batch(seqs), LossContext())
    with torch.no_grad():
        nll = mean_nll_by_hand(model, seqs)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(-float(nll), rel=1e-5)
    assert diag["forget_nll"] == pytest.approx(float(nll), rel=1e-5)
    # Not a token-weighted mean over the batch (which differs when answer lengths differ).
    with torch.no_grad():
        token_mean = -torch.cat([answer_logprobs(model, e) for e in seqs]).mean()
    assert abs(float(nll) - float(token_mean)) > 1e-4


def test_gd_loss_is_ga_plus_weighted_retain_nll() -> None:
    """GD: L = -NLL_forget + lambda * NLL_retain (each a mean over rows of mean answer-token NLL), lambda = 2.5."""
    model = tiny_llama(0)
    forget, retain = toy_sequences(1, FORGET_SHAPES), toy_sequences(2, RETAIN_SHAPES)
    method = make_method("gd", {"retain_weight": 2.5})
    batch = UnlearnBatch(forget=collate(forget, PAD), retain=collate(retain, PAD))
    loss, diag = method.loss(model, batch, LossContext())
    with torch.no_grad():
        forget_nll, retain_nll = mean_nll_by_hand(model, forget), mean_nll_by_hand(model, retain)
    assert loss.item() == pytest.approx(float(-forget_nll + 2.5 * retain_nll), rel=1e-5)
    assert diag["forget_nll"] == pytest.approx(float(forget_nll), rel=1e-5)
    assert diag["retain_nll"] == pytest.approx(float(retain_nll), rel=1e-5)


# --------------------------------------------------------------------------------------------------------- NPO


def seq_logprob(model: torch.nn.Module, e: Encoded) -> torch.Tensor:
    """log p(a | q) = SUM over answer tokens of log p_i."""
    return answer_logprobs(model, e).sum()


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_npo_loss_formula_with_a_different_reference(beta: float) -> None:
    """NPO: L = (2/beta) mean_rows log(1 + exp(beta * (log p_theta(a|q) - log p_ref(a|q)))), sequence log-probs
    summed over answer tokens; diagnostics npo_weight = mean 2 sigmoid(beta r), log_ratio = mean r."""
    model, ref = tiny_llama(0), tiny_llama(1)
    seqs = toy_sequences(1, FORGET_SHAPES)
    loss, diag = make_method("npo", {"beta": beta}).loss(model, forget_batch(seqs),
                                                         LossContext(reference=ReferenceModel(ref)))
    with torch.no_grad():
        ratios = torch.stack([seq_logprob(model, e) - seq_logprob(ref, e) for e in seqs])
    assert ratios.abs().min() > 0.05  # the reference really differs, so the test is not the log 2 case
    expected = (2 / beta) * torch.log1p(torch.exp(beta * ratios)).mean()
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    weights = 2 * torch.sigmoid(beta * ratios)
    assert diag["npo_weight"] == pytest.approx(float(weights.mean()), rel=1e-5)
    assert diag["log_ratio"] == pytest.approx(float(ratios.mean()), rel=1e-5, abs=1e-5)


def test_npo_with_model_equal_to_reference() -> None:
    """theta = theta_ref: every log ratio is 0, so L = (2/beta) log 2 and the weight 2 sigmoid(0) = 1."""
    beta = 0.3
    model = tiny_llama(0)
    ref = ReferenceModel(copy.deepcopy(model))
    loss, diag = make_method("npo", {"beta": beta}).loss(model, forget_batch(toy_sequences(1, FORGET_SHAPES)),
                                                         LossContext(reference=ref))
    assert loss.item() == pytest.approx(2 / beta * math.log(2), rel=1e-5)
    assert diag["npo_weight"] == pytest.approx(1.0, abs=1e-5)
    assert diag["log_ratio"] == pytest.approx(0.0, abs=1e-4)
    assert all(p.requires_grad for p in model.parameters())  # freezing the reference left the model alone


def test_npo_gradient_is_reweighted_ga_gradient() -> None:
    """For one row, L_NPO = (2/beta) softplus(beta (s - s_ref)) with s = sum_i log p_i, so
    grad L_NPO = w * grad s with w = 2 sigmoid(beta r) = 2 p^beta / (p^beta + p_ref^beta), r = s - s_ref;
    equivalently w * T * grad L_GA (GA's loss is the mean, not the sum, of the answer log-probs)."""
    beta = 0.5
    model, ref = tiny_llama(0), tiny_llama(1)
    (e,) = toy_sequences(3, ((3, 4),))
    params = [model.model.layers[0].self_attn.q_proj.weight, model.lm_head.weight]
    batch = forget_batch([e])

    npo_loss, _ = make_method("npo", {"beta": beta}).loss(model, batch, LossContext(reference=ReferenceModel(ref)))
    npo_grads = torch.autograd.grad(npo_loss, params)

    s = seq_logprob(model, e)
    s_grads = torch.autograd.grad(s, params)
    with torch.no_grad():
        r = s - seq_logprob(ref, e)
    w = float(2 * torch.sigmoid(beta * r))
    assert abs(w - 1.0) > 1e-2  # a non-trivial weight
    for g_npo, g_s in zip(npo_grads, s_grads, strict=True):
        assert g_npo.abs().max() > 0
        torch.testing.assert_close(g_npo, w * g_s, rtol=1e-4, atol=1e-6)

    ga_loss, _ = make_method("ga").loss(model, batch, LossContext())
    ga_grads = torch.autograd.grad(ga_loss, params)
    t = len(e.answer_ids)
    for g_npo, g_ga in zip(npo_grads, ga_grads, strict=True):
        torch.testing.assert_close(g_npo, w * t * g_ga, rtol=1e-4, atol=1e-6)


def test_npo_needs_reference() -> None:
    """Without a reference NPO is undefined and says so."""
    with pytest.raises(RuntimeError, match="reference"):
        make_method("npo").loss(tiny_llama(0), forget_batch(toy_sequences(1, FORGET_SHAPES)), LossContext())


def test_reference_sequence_logprob_is_summed_and_cached() -> None:
    """ReferenceModel.sequence_logprob = sum of answer-token log-probs per row (padding ignored), cached per
    (key, item index): later calls return the cached numbers in the order of the batch's index, and another key
    is a separate cache."""
    ref_model = tiny_llama(1)
    ref = ReferenceModel(ref_model)
    seqs = toy_sequences(1, FORGET_SHAPES)
    with torch.no_grad():
        expected = torch.stack([seq_logprob(ref_model, e) for e in seqs])
    got = ref.sequence_logprob(collate(seqs, PAD, index=[10, 11, 12]), "forget")
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    reordered = collate([seqs[2], seqs[0]], PAD, index=[12, 10])
    torch.testing.assert_close(ref.sequence_logprob(reordered, "forget").double(), expected[[2, 0]],
                               rtol=1e-5, atol=1e-5)
    # Same index, other sequences: the forget cache answers; under another key they are computed afresh.
    others = toy_sequences(5, FORGET_SHAPES)
    with torch.no_grad():
        fresh = torch.stack([seq_logprob(ref_model, e) for e in others])
    assert (fresh - expected).abs().min() > 1e-3
    torch.testing.assert_close(ref.sequence_logprob(collate(others, PAD, index=[10, 11, 12]), "forget").double(),
                               expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ref.sequence_logprob(collate(others, PAD, index=[10, 11, 12]), "retain").double(),
                               fresh, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in ref_model.parameters())


# ---------------------------------------------------------------------------------------- construction errors


def test_make_method_rejects_bad_hyperparameters() -> None:
    """beta must be > 0 (SpecError); an unknown field 'betta' is a SpecError naming 'beta'; an unknown method
    'nop' raises with "did you mean 'npo'"."""
    assert make_method("npo").params.beta == pytest.approx(0.1)
    assert make_method("npo", {"beta": 1}).params.beta == 1.0  # int accepted as a number
    with pytest.raises(SpecError, match="beta"):
        make_method("npo", {"beta": -1})
    with pytest.raises(SpecError, match="beta"):
        make_method("npo", {"beta": 0})
    with pytest.raises(SpecError, match="beta") as unknown:
        make_method("npo", {"betta": 0.1})
    assert "betta" in str(unknown.value)
    with pytest.raises(SpecError):
        make_method("npo", {"beta": "big"})
    with pytest.raises(SpecError, match="retain_weight"):
        make_method("gd", {"retain_weight": -2.0})
    with pytest.raises(RegistryError, match="did you mean 'npo'"):
        METHODS.get("nop")
    # make_method may report the unknown name as the registry's error or as a SpecError wrapping it.
    with pytest.raises((RegistryError, SpecError)) as unknown_method:
        make_method("nop")
    assert "did you mean 'npo'" in str(unknown_method.value)
