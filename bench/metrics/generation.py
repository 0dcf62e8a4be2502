"""Metrics of the greedy answer: ROUGE-L (computed by the ``rouge-score`` package) and exact string match."""

from __future__ import annotations

from functools import cache

import numpy as np
from rouge_score import rouge_scorer

from bench.metrics.base import ItemMetric
from bench.registry import METRICS


@cache
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> tuple[float, float]:
    """(recall, F1) of ROUGE-L: LCS(pred, ref) / |ref| and the harmonic mean with LCS / |pred| (stemmed tokens)."""
    score = _scorer().score(target=reference, prediction=prediction)["rougeL"]
    return score.recall, score.fmeasure


METRICS.add("rouge_l", ItemMetric(
    "rouge_l", "ROUGE-L recall of the greedy answer (TOFU)", direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([rouge_l(g, a)[0] for g, a in zip(s.generations, s.answers)]),
    source="Maini et al. 2024, TOFU (arXiv 2401.06121); Lin 2004 (ROUGE)"))
METRICS.add("exact_answer", ItemMetric(
    "exact_answer", "1 if the greedy answer equals the reference answer string exactly",
    direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([float(g == a.strip()) for g, a in zip(s.generations, s.answers)]),
    source="this suite (strict string match)"))
