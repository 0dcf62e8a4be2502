"""Likelihood and extraction metrics, all read from the one teacher-forced pass (arXiv 2401.06121 TOFU;
Tirumala et al. 2022; arXiv 2406.09179)."""

from __future__ import annotations

import numpy as np

from bench.metrics.base import ALL_ROLES, ItemMetric
from bench.metrics.engine import SplitScores
from bench.registry import METRICS


def probability(logprobs: np.ndarray) -> float:
    """TOFU Prob of one answer: exp(-NLL(a)) with NLL the mean answer-token negative log-likelihood."""
    return float(np.exp(np.mean(logprobs)))


def normalised_probability(answer_nll: float, perturbed_nll: np.ndarray) -> float:
    """TOFU's Prob on utility sets: P(a) / (P(a) + sum_k P(pert_k)), each P = exp(-mean token NLL)."""
    p = np.exp(-answer_nll)
    return float(p / (p + np.exp(-np.asarray(perturbed_nll)).sum()))


def exact_memorization(match: np.ndarray) -> float:
    """EM (Tirumala et al. 2022): (1/T) sum_k 1[argmax p(. | q, a_<k) = a_k]."""
    return float(np.mean(match))


def extraction_strength(match: np.ndarray) -> float:
    """ES (arXiv 2406.09179): 1 - (1/T) min{k : greedy decoding from [q, a_<k] reproduces a_>=k}.

    With ``match[j]`` = [argmax p(. | q, a_<j) = a_j], the smallest such k is one past the last mismatch, so
    ES = 1 - (j_last_mismatch + 1) / T; all matches give 1; a mismatch on the last token (not extractable even with
    all but one token given) gives 0.
    """
    t = len(match)
    mismatches = np.flatnonzero(~np.asarray(match, dtype=bool))
    k = int(mismatches[-1]) + 1 if len(mismatches) else 0
    return 1.0 - k / t


def _prob(scores: SplitScores) -> np.ndarray:
    if scores.role == "utility":
        return np.array([normalised_probability(s.mean_nll, pert)
                         for s, pert in zip(scores.answer, scores.perturbed_nll)])
    return np.array([probability(s.logprobs) for s in scores.answer])


METRICS.add("prob", ItemMetric(
    "prob", "exp(-mean answer NLL); normalised against perturbed answers on utility sets (TOFU)",
    direction="higher", forget_direction="lower", per_item=_prob, source="Maini et al. 2024, TOFU (arXiv 2401.06121)",
    roles=ALL_ROLES, version="1"))
METRICS.add("em", ItemMetric(
    "em", "exact memorization: share of answer tokens that are the teacher-forced argmax",
    direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([exact_memorization(t.argmax_match) for t in s.answer]),
    source="Tirumala et al. 2022, Memorization Without Overfitting (arXiv 2205.10770)", roles=ALL_ROLES,
    version="1"))
METRICS.add("es", ItemMetric(
    "es", "extraction strength: 1 - (shortest answer prefix from which greedy decoding recovers the rest) / T",
    direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([extraction_strength(t.argmax_match) for t in s.answer]),
    source="Wang et al. 2024, Unlearning with Control (arXiv 2406.09179)", roles=ALL_ROLES, version="1"))


def _es_rephrased(scores: SplitScores) -> np.ndarray:
    if scores.answer_rephrased is None:
        raise ValueError(f"split {scores.split}: es_rephrased needs paraphrased questions")
    return np.array([extraction_strength(t.argmax_match) for t in scores.answer_rephrased])


METRICS.add("es_rephrased", ItemMetric(
    "es_rephrased", "extraction strength of the true answer after the PARAPHRASED question: forgetting that holds "
    "only for the training wording is not forgetting (robustness check)",
    direction="higher", forget_direction="lower", per_item=_es_rephrased, requires="answer_rephrased",
    reads=("rephrased",),
    source="Wang et al. 2024, Unlearning with Control (arXiv 2406.09179), robustness to rephrasing", version="1"))
