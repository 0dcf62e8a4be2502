"""TOFU's truth ratio, forget quality and model utility (Maini et al. 2024, arXiv 2401.06121)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import hmean, ks_2samp

from bench.metrics.base import ItemMetric, MissingInputError, MissingReferenceError, ModelMetric
from bench.metrics.engine import SplitScores
from bench.registry import METRICS


def truth_ratio_raw(paraphrase_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """R = exp(NLL_para - mean_k NLL_pert_k) = P~(perturbed) / P~(paraphrased), P~ length-normalised.

    The mean over perturbed answers is taken on NLLs (a geometric mean of normalised probabilities), as the TOFU
    code does; the paper's formula writes an arithmetic mean of probabilities.
    """
    return np.exp(np.asarray(paraphrase_nll) - np.asarray(perturbed_nll).mean(axis=-1))


def truth_ratio_score(raw: np.ndarray, role: str) -> np.ndarray:
    """Reported form: min(R, 1/R) on the forget split (1 = no preference for the truth), max(0, 1 - R) elsewhere
    (1 = the truth is far more likely than the perturbations)."""
    raw = np.asarray(raw, dtype=float)
    if role == "forget":
        return np.minimum(raw, 1.0 / raw)
    return np.maximum(0.0, 1.0 - raw)


def forget_quality(unlearned_raw_tr: np.ndarray, oracle_raw_tr: np.ndarray) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test between the per-item forget truth ratios of the
    unlearned model and of the retain oracle (high = indistinguishable from never having trained on the data)."""
    return float(ks_2samp(unlearned_raw_tr, oracle_raw_tr).pvalue)


def model_utility(values: Mapping[str, float]) -> float:
    """Harmonic mean of Prob, ROUGE-L and truth ratio over the non-forget splits: retain, world facts and, where the
    task has them (TOFU), real authors: TOFU's 9 numbers; the synthetic task has no real authors and gives 6. Any
    zero makes the utility zero, by design of the harmonic mean."""
    numbers = np.array(list(values.values()), dtype=float)
    if np.any(numbers <= 0):
        return 0.0
    return float(hmean(numbers))


UTILITY_SPLITS = ("retain", "world_facts", "real_authors")
UTILITY_METRICS = ("prob", "rouge_l", "truth_ratio")


def _model_utility(per_item: Mapping[str, Mapping[str, np.ndarray]], _oracle) -> float:
    missing = [f"{s}/{m}" for s in UTILITY_SPLITS if s in per_item for m in UTILITY_METRICS if m not in per_item[s]]
    if missing or not all(s in per_item for s in UTILITY_SPLITS[:2]):
        raise MissingInputError(f"model_utility needs {', '.join(missing) or 'retain and world_facts'}")
    return model_utility({f"{s}/{m}": float(np.mean(per_item[s][m])) for s in UTILITY_SPLITS if s in per_item
                          for m in UTILITY_METRICS})


def _forget_quality(per_item: Mapping[str, Mapping[str, np.ndarray]],
                    oracle: Mapping[str, Mapping[str, np.ndarray]] | None) -> float:
    if "truth_ratio_raw" not in per_item.get("forget", {}):
        raise MissingInputError("forget_quality needs forget truth ratios (paraphrased and perturbed answers)")
    if oracle is None:
        raise MissingReferenceError("forget_quality needs the retain oracle's forget truth ratios; none were given")
    return forget_quality(per_item["forget"]["truth_ratio_raw"], oracle["forget"]["truth_ratio_raw"])


def _truth_ratio(scores: SplitScores) -> np.ndarray:
    return truth_ratio_score(truth_ratio_raw(scores.paraphrase_nll, scores.perturbed_nll), scores.role)


TOFU = "Maini et al. 2024, TOFU (arXiv 2401.06121)"

METRICS.add("truth_ratio", ItemMetric(
    "truth_ratio", "TOFU truth ratio: min(R, 1/R) on forget, max(0, 1 - R) on retain and utility",
    direction="higher", forget_direction="higher", per_item=_truth_ratio, source=TOFU,
    reads=("paraphrase", "perturbed"), version="1"))
METRICS.add("truth_ratio_raw", ItemMetric(
    "truth_ratio_raw", "R = P(perturbed) / P(paraphrased), length-normalised (input of forget quality)",
    direction="lower", forget_direction="higher",
    per_item=lambda s: truth_ratio_raw(s.paraphrase_nll, s.perturbed_nll), source=TOFU,
    reads=("paraphrase", "perturbed"), version="1"))
METRICS.add("model_utility", ModelMetric(
    "model_utility", "harmonic mean of Prob, ROUGE-L, truth ratio on retain and world facts (TOFU)",
    direction="higher", needs_oracle=False, compute=_model_utility, source=TOFU, version="1",
    role_sets=(("retain", "utility"),)))
METRICS.add("forget_quality", ModelMetric(
    "forget_quality", "KS-test p-value of forget truth ratios vs the retain oracle (TOFU)",
    direction="higher", needs_oracle=True, compute=_forget_quality, source=TOFU, version="1",
    role_sets=(("forget",),)))
