"""Metrics of greedy generations: ROUGE-L (computed by the ``rouge-score`` package), exact string match, MUSE's
knowledge and verbatim memorization, and two quality checks of the text itself (fluency and gibberish rate) that
need no external classifier."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import cache

import numpy as np
from rouge_score import rouge_scorer

from bench.metrics.base import ALL_ROLES, ItemMetric
from bench.metrics.engine import SplitScores
from bench.registry import METRICS

MUSE = "Shi et al. 2024, MUSE (arXiv 2407.06460)"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@cache
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> tuple[float, float]:
    """(recall, F1) of ROUGE-L: LCS(pred, ref) / |ref| and the harmonic mean with LCS / |pred| (stemmed tokens)."""
    score = _scorer().score(target=reference, prediction=prediction)["rougeL"]
    return score.recall, score.fmeasure


def words(text: str) -> list[str]:
    """Lower-cased word tokens: runs of letters and digits, with an apostrophe suffix kept ("father's")."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def ngram_entropy(text: str, ns: tuple[int, ...] = (2, 3), weights: tuple[float, ...] = (2 / 3, 4 / 3)) -> float:
    """Fluency as n-gram entropy (ROME, Meng et al. 2022): mean over n of w_n * H_n with
    H_n = -sum_g f(g) log2 f(g), f the relative frequency of each word n-gram g of the text (H_n = 0 with fewer
    than n words). Repetitive degenerate text ("the the the ...") has low entropy."""
    tokens = words(text)
    terms = []
    for n, w in zip(ns, weights):
        grams = Counter(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))
        total = sum(grams.values())
        h = -sum(c / total * math.log2(c / total) for c in grams.values()) if total else 0.0
        terms.append(w * h)
    return float(np.mean(terms))


GIBBERISH_OOV = 0.5  # more than half of the words are not words of the task
GIBBERISH_REPEAT = 0.5  # more than half of the word trigrams repeat an earlier one


def is_gibberish(text: str, lexicon: frozenset[str]) -> bool:
    """A generation is gibberish iff it has no word, or the share of its words outside the task's lexicon exceeds
    ``GIBBERISH_OOV`` (word fragments, token soup), or the share of repeated word trigrams
    1 - distinct(trigrams) / trigrams exceeds ``GIBBERISH_REPEAT`` (loops). No classifier: a fictitious world's
    names are words of the task, so the lexicon is the task's own vocabulary."""
    tokens = words(text)
    if not tokens:
        return True
    if sum(t not in lexicon for t in tokens) / len(tokens) > GIBBERISH_OOV:
        return True
    grams = [tuple(tokens[i: i + 3]) for i in range(len(tokens) - 2)]
    return bool(grams) and 1 - len(set(grams)) / len(grams) > GIBBERISH_REPEAT


def _gibberish(scores: SplitScores) -> np.ndarray:
    if scores.lexicon is None:
        raise ValueError(f"split {scores.split}: the gibberish rate needs the task lexicon")
    return np.array([float(is_gibberish(g, scores.lexicon)) for g in scores.generations])


METRICS.add("rouge_l", ItemMetric(
    "rouge_l", "ROUGE-L recall of the greedy answer (TOFU)", direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([rouge_l(g, a)[0] for g, a in zip(s.generations, s.answers)]),
    source="Maini et al. 2024, TOFU (arXiv 2401.06121); Lin 2004 (ROUGE)", reads=("generation",), version="1"))
METRICS.add("exact_answer", ItemMetric(
    "exact_answer", "1 if the greedy answer equals the reference answer string exactly",
    direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([float(g == a.strip()) for g, a in zip(s.generations, s.answers)]),
    source="this suite (strict string match)", reads=("generation",), version="1"))
METRICS.add("knowmem", ItemMetric(
    "knowmem", "KnowMem: ROUGE-L F1 of the greedy answer to a question about the subject against the true answer",
    direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([rouge_l(g, a)[1] for g, a in zip(s.generations, s.answers)]),
    source=MUSE, roles=("forget", "retain"), reads=("generation",), version="1"))
METRICS.add("verbmem", ItemMetric(
    "verbmem", "VerbMem: ROUGE-L F1 of the greedy continuation of a text's first sentence against its true "
    "continuation", direction="higher", forget_direction="lower",
    per_item=lambda s: np.array([rouge_l(g, a)[1] for g, a in zip(s.generations, s.answers)]),
    source=MUSE, roles=("text",), reads=("generation",), version="1"))
METRICS.add("fluency", ItemMetric(
    "fluency", "n-gram entropy of the greedy generation: mean of (2/3) H_2 and (4/3) H_3 over word bi- and trigrams "
    "(bits); low = repetitive", direction="higher", forget_direction="higher",
    per_item=lambda s: np.array([ngram_entropy(g) for g in s.generations]),
    source="Meng et al. 2022, ROME (arXiv 2202.05262), generation entropy", roles=ALL_ROLES,
    reads=("generation",), version="1"))
METRICS.add("gibberish", ItemMetric(
    "gibberish", "1 if the greedy generation is empty, mostly words foreign to the task, or mostly repeated "
    "trigrams; the mean is the gibberish rate", direction="lower", forget_direction="lower",
    per_item=_gibberish, source="this suite (classifier-free gibberish check)", roles=ALL_ROLES, requires="lexicon",
    reads=("generation",), version="1"))
