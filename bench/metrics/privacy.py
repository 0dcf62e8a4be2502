"""Membership inference and privacy leakage (MUSE, Shi et al. 2024, arXiv 2407.06460), read from the one
teacher-forced pass of the engine (``TokenScores``): no extra model call.

Per-item MIA scores (``ItemMetric``), all oriented so that a *higher score means "more likely a member"* (seen in
training); T is the number of answer tokens, log p_t = log p(a_t | q, a_<t):

* ``mia_loss``   LOSS attack (Yeom et al. 2018; Carlini et al. 2021): -NLL(a) = (1/T) sum_t log p_t.
* ``mia_zlib``   zlib attack (Carlini et al. 2021, "Extracting training data from LLMs"; MUSE; open-unlearning):
  ((1/T) sum_t log p_t) / len(zlib.compress(answer bytes)) = -NLL(a) / zlib length, the *mean* token log-likelihood
  (not the sum) over the zlib entropy of the text in bytes.
* ``mia_mink``   Min-K% (Shi et al. 2024, arXiv 2310.16789): mean of the lowest k = 40% of log p_t.
* ``mia_minkpp`` Min-K%++ (Zhang et al. 2024, arXiv 2404.02936): mean of the lowest k = 40% of
  (log p_t - mu_t) / sigma_t, with mu_t = E_{z~p(.|q,a_<t)} log p(z) and sigma_t^2 = Var_{z~p(.|q,a_<t)} log p(z).

Their ``direction`` ("higher") and ``forget_direction`` ("lower") are display conventions only: a member-like score
is "knowing the data", which is good on retain and bad on forget; on holdout (never trained) no direction is
meaningful. The per-split means are reported but the evidence is in the model metrics:

* ``mia_auc_<score>`` (``mia_auc_loss``, ``mia_auc_zlib``, ``mia_auc_mink``, ``mia_auc_minkpp``): AUC =
  roc_auc_score (scikit-learn) of forget items (label 1, members of the target) against holdout items (label 0,
  never trained), i.e. P(score(forget item) > score(holdout item)). 0.5 = indistinguishable; the target is near 1,
  the retain oracle (trained on neither) near 0.5. The members and non-members are the first pair of
  ``MIA_SPLIT_PAIRS`` the evaluation has: a benchmark's own MIA texts (``mia_forget`` / ``mia_holdout``: MUSE's
  privleak forget and holdout documents, split role "mia", scored on the whole document given BOS), else the
  forget and holdout QA (the synthetic task).
* ``privleak_<score>`` (``privleak_loss``, ...): MUSE PrivLeak exactly as MUSE (and open-unlearning's
  ``privleak``) define it. MUSE computes its AUC with the forget set as the *non-member* class: AUC' = 1 - AUC in
  the orientation above, and PrivLeak = (AUC'(model) - AUC'(oracle)) / AUC'(oracle) * 100, which is

      PrivLeak = (AUC(oracle) - AUC(model)) / (1 - AUC(oracle)) * 100

  with AUC(oracle) the retain oracle's AUC on the same forget and holdout items (``needs_oracle``;
  ``MissingReferenceError`` without it; NaN when AUC(oracle) = 1). The ideal is 0; negative = under-unlearning
  (the attack tells forget from holdout apart better than on the oracle: forget still looks like training data; a
  model that leaks completely, AUC = 1, reads -100 whatever the oracle), positive = over-unlearning (forget looks
  *less* familiar than it does to the oracle, itself a leak). Values are directly comparable with MUSE's published
  PrivLeak, sign included (e.g. its News target, -99.81). So the registered directions are ideal values, not
  monotone: ``half`` for the AUCs (0.5, no membership signal) and ``zero`` for PrivLeak; boards mark them ``→½`` and
  ``→0`` and sort them by distance to the ideal.

* The reference-model attack (open-unlearning's ``mia_reference``, its ``ReferenceAttack``; the reference attack of
  Carlini et al. 2021 and Mireshghallah et al. 2022): score = (-NLL_model(a)) - (-NLL_ref(a)) = ``mia_loss`` of the
  model minus ``mia_loss`` of the reference, the retain oracle (trained on neither forget nor holdout, as
  open-unlearning's reference is the retain model), item by item: the likelihood the model gives an answer beyond
  what a model that never saw it gives. open-unlearning scores NLL_model - NLL_ref with the forget set as class 0,
  which is the same AUC. ``mia_auc_reference`` is its AUC in this module's orientation, and ``privleak_reference``
  its PrivLeak as above, with AUC(oracle) the oracle scored against itself (every score 0: AUC 0.5), so
  ``privleak_reference`` = (0.5 - AUC) / 0.5 * 100. Both need the oracle's per-item ``mia_loss``; both were added
  after records were published and stay out of run ids (``ModelMetric.in_ids``).

* GradNorm (MUSE; open-unlearning's ``GradNormAttack``), two statistics of the same per-item gradient g_k =
  grad_{theta_k} NLL(a) of each of the K trainable parameter tensors (``bench.metrics.gradnorm``):
  ``mia_gradnorm`` = -(1/K) sum_k ||g_k||_2, the mean over parameter tensors of each tensor's L2 norm
  (open-unlearning's attack: the one to compare with published GradNorm numbers), and ``mia_gradnorm_l2`` =
  -||grad_theta NLL(a)||_2 = -sqrt(sum_k ||g_k||_2^2), one global L2 norm over all parameters. Members sit near a
  loss minimum so their gradients are small. It needs a backward pass per item (one for both statistics), so the
  engine computes it only when asked (``evaluate(..., gradnorm=True)``: the run's final model and the references,
  not calibration probes), on the membership splits only; ``mia_auc_gradnorm[_l2]`` and ``privleak_gradnorm[_l2]``
  are left out of evaluations without it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping

import numpy as np
from scipy.stats import rankdata

from bench.metrics.base import (
    QA_ROLES,
    ItemMetric,
    MissingInputError,
    MissingReferenceError,
    ModelMetric,
    draw_matrix,
)
from bench.metrics.engine import SplitScores, TokenScores
from bench.metrics.gradnorm import GLOBAL_L2, TENSOR_MEAN, gradnorm_score
from bench.registry import METRICS

MIN_K = 0.4  # the share of lowest-scoring tokens averaged by Min-K% and Min-K%++ (MUSE's and Min-K%++'s default)
MEMBER_SPLIT = "forget"
NON_MEMBER_SPLIT = "holdout"
# (members, non-members) of the membership-inference metrics, in order of preference: a benchmark's own MIA texts
# (MUSE's privleak documents) where the task has them, else the forget and holdout QA
MIA_SPLIT_PAIRS = (("mia_forget", "mia_holdout"), (MEMBER_SPLIT, NON_MEMBER_SPLIT))
MIA_ROLES = ("forget", "holdout", "mia")  # the roles of the membership splits (GradNorm is computed on them only)


def membership_splits(splits: Iterable[str]) -> tuple[str, str] | None:
    """The (member, non-member) split pair of the MIA metrics among ``splits``: the first pair of
    ``MIA_SPLIT_PAIRS`` with both splits present, or None (no membership inference)."""
    present = set(splits)
    return next((pair for pair in MIA_SPLIT_PAIRS if pair[0] in present and pair[1] in present), None)


def loss_score(logprobs: np.ndarray) -> float:
    """LOSS attack score -NLL(a) = (1/T) sum_t log p(a_t | q, a_<t) (Yeom et al. 2018; Carlini et al. 2021)."""
    return float(np.mean(logprobs))


def zlib_score(logprobs: np.ndarray, text: str) -> float:
    """zlib attack score ((1/T) sum_t log p(a_t | q, a_<t)) / len(zlib.compress(text.encode("utf-8"))) = -NLL(a) /
    zlib length (Carlini et al. 2021; MUSE; open-unlearning): the answer's *mean* token log-likelihood (not the
    sum) relative to its zlib entropy in bytes, so texts that are simply easy to predict (repetitive, low entropy)
    do not look like members."""
    return float(np.mean(logprobs) / len(zlib.compress(text.encode("utf-8"))))


def _lowest_k_mean(values: np.ndarray, k: float) -> float:
    """Mean of the lowest max(1, floor(k * T)) of T values (at least one token, so short answers are scored)."""
    values = np.asarray(values, dtype=float)
    n = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:n]))


def min_k_score(logprobs: np.ndarray, k: float = MIN_K) -> float:
    """Min-K% (Shi et al. 2024, arXiv 2310.16789): mean of the lowest k share of the token log-probs log p(a_t)."""
    return _lowest_k_mean(logprobs, k)


def min_k_plus_plus_tokens(logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per-token Min-K%++ values (log p(a_t) - mu_t) / sigma_t (Zhang et al. 2024, arXiv 2404.02936), with mu_t and
    sigma_t the mean and standard deviation of log p(z), z ~ p(. | q, a_<t). Where sigma_t = 0 (log p constant on
    the support, e.g. a one-hot distribution) the value is 0, the limit for a token in the support."""
    logprobs, mu, sigma = (np.asarray(x, dtype=float) for x in (logprobs, mu, sigma))
    return np.divide(logprobs - mu, sigma, out=np.zeros_like(logprobs), where=sigma > 0)


def min_k_plus_plus_score(logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray, k: float = MIN_K) -> float:
    """Min-K%++: mean of the lowest k share of (log p(a_t) - mu_t) / sigma_t (Zhang et al. 2024)."""
    return _lowest_k_mean(min_k_plus_plus_tokens(logprobs, mu, sigma), k)


def _moments(t: TokenScores) -> tuple[np.ndarray, np.ndarray]:
    if t.mu is None or t.sigma is None:
        raise ValueError("mia_minkpp needs TokenScores.mu and .sigma (teacher_forced(..., moments=True))")
    return t.mu, t.sigma


# short name -> (description, per-item function); registered as mia_<short>, mia_auc_<short>, privleak_<short>
ITEM_SCORES: dict[str, tuple[str, Callable[[SplitScores], np.ndarray]]] = {
    "loss": ("LOSS MIA score: mean answer-token log-prob, -NLL (Yeom et al. 2018)",
                 lambda s: np.array([loss_score(t.logprobs) for t in s.answer])),
    "zlib": ("zlib MIA score: mean answer-token log-prob (-NLL, not the sum) / zlib-compressed answer bytes "
             "(Carlini et al. 2021)",
                 lambda s: np.array([zlib_score(t.logprobs, a) for t, a in zip(s.answer, s.answers, strict=True)])),
    "mink": ("Min-K% MIA score: mean of the lowest 40% answer-token log-probs (Shi et al. 2024)",
                 lambda s: np.array([min_k_score(t.logprobs) for t in s.answer])),
    "minkpp": ("Min-K%++ MIA score: mean of the lowest 40% of (log p - mu) / sigma (Zhang et al. 2024)",
                   lambda s: np.array([min_k_plus_plus_score(t.logprobs, *_moments(t)) for t in s.answer])),
}


def mia_auc(member: np.ndarray, non_member: np.ndarray) -> float:
    """ROC AUC of member (label 1) vs non-member (label 0) scores, higher score = member:
    P(s_member > s_non_member) + P(tie) / 2, computed as the Mann-Whitney statistic from average ranks,
    AUC = (R_member - m (m + 1) / 2) / (m n) with R_member the sum of the members' ranks among all m + n scores.
    Equal to scikit-learn's roc_auc_score (tests check it to 1e-12) at a fraction of its cost, which matters
    because the bootstrap interval recomputes it a few hundred times."""
    member, non_member = np.asarray(member, dtype=float), np.asarray(non_member, dtype=float)
    m, n = len(member), len(non_member)
    if not m or not n:
        raise ValueError(f"MIA AUC needs both members ({m}) and non-members ({n})")
    ranks = rankdata(np.concatenate([member, non_member]))
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def mia_auc_rows(member: np.ndarray, non_member: np.ndarray) -> np.ndarray:
    """``mia_auc`` of every row: member (B, m) and non-member (B, n) scores, the same average-rank statistic
    computed for all B rows in one ``rankdata`` call (the bootstrap's draws)."""
    m, n = member.shape[1], non_member.shape[1]
    if not m or not n:
        raise ValueError(f"MIA AUC needs both members ({m}) and non-members ({n})")
    ranks = rankdata(np.concatenate([member, non_member], axis=1).astype(float), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def privleak(auc_model: float, auc_oracle: float) -> float:
    """MUSE PrivLeak (Shi et al. 2024, arXiv 2407.06460) from AUCs in this module's orientation (forget = members,
    higher score = member): MUSE's AUC' = 1 - AUC (forget as the non-member class) and PrivLeak = (AUC'_model -
    AUC'_oracle) / AUC'_oracle * 100 = (AUC_oracle - AUC_model) / (1 - AUC_oracle) * 100. 0 = ideal, negative =
    under-unlearning (-100 for a complete leak, AUC_model = 1, whatever the oracle), positive = over-unlearning.
    NaN (undefined) when AUC_oracle = 1, i.e. the oracle scores every member above every non-member (a handful of
    items)."""
    if auc_oracle == 1.0:
        return float("nan")
    return (auc_oracle - auc_model) / (1.0 - auc_oracle) * 100.0


def _membership_pair(per_item: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[str, str]:
    pair = membership_splits(per_item)
    if pair is None:
        raise MissingInputError(f"the task has no {NON_MEMBER_SPLIT} split: no membership inference")
    return pair


def _split_auc(per_item: Mapping[str, Mapping[str, np.ndarray]], score: str,
               pair: tuple[str, str] | None = None) -> float:
    """AUC of ``score`` on the membership splits ``pair`` (default: those of ``per_item``)."""
    members, non_members = pair or _membership_pair(per_item)
    member, non_member = per_item[members], per_item[non_members]
    if score not in member or score not in non_member:
        raise MissingInputError(f"{score} was not computed in this evaluation")
    return mia_auc(member[score], non_member[score])


def _split_auc_draws(per_item: Mapping[str, Mapping[str, np.ndarray]], score: str, pair: tuple[str, str],
                     draws: list[dict[str, np.ndarray]]) -> np.ndarray:
    """``_split_auc`` on every draw's resample of the membership splits ``pair``."""
    members, non_members = pair
    return mia_auc_rows(draw_matrix(np.asarray(per_item[members][score], dtype=float), draws, members),
                        draw_matrix(np.asarray(per_item[non_members][score], dtype=float), draws, non_members))


def _auc_draws(score: str) -> Callable[..., np.ndarray]:
    def compute_draws(per_item: Mapping[str, Mapping[str, np.ndarray]], _oracle, draws) -> np.ndarray:
        return _split_auc_draws(per_item, score, _membership_pair(per_item), draws)

    return compute_draws


def _privleak_draws(score: str) -> Callable[..., np.ndarray]:
    def compute_draws(per_item: Mapping[str, Mapping[str, np.ndarray]], oracle, draws) -> np.ndarray:
        pair = _membership_pair(per_item)
        auc_model = _split_auc_draws(per_item, score, pair, draws)
        auc_oracle = auc_model if oracle is per_item else _split_auc_draws(oracle, score, pair, draws)
        with np.errstate(divide="ignore", invalid="ignore"):
            leak = (auc_oracle - auc_model) / (1.0 - auc_oracle) * 100.0
        return np.where(auc_oracle == 1.0, np.nan, leak)  # privleak: undefined where AUC_oracle = 1

    return compute_draws


def _auc_metric(score: str) -> Callable[[Mapping[str, Mapping[str, np.ndarray]], object], float]:
    def compute(per_item: Mapping[str, Mapping[str, np.ndarray]], _oracle) -> float:
        return _split_auc(per_item, score)

    return compute


def _privleak_metric(score: str) -> Callable[[Mapping[str, Mapping[str, np.ndarray]],
                                              Mapping[str, Mapping[str, np.ndarray]] | None], float]:
    def compute(per_item: Mapping[str, Mapping[str, np.ndarray]],
                oracle: Mapping[str, Mapping[str, np.ndarray]] | None) -> float:
        pair = _membership_pair(per_item)
        auc_model = _split_auc(per_item, score, pair)  # MissingInputError when this evaluation lacks the score
        if oracle is None:
            raise MissingReferenceError(f"privleak_{score} needs the retain oracle's per-item {score}; none were given")
        missing = [s for s in pair if score not in oracle.get(s, {})]
        if missing:
            raise MissingReferenceError(f"privleak_{score} needs the retain oracle's {score} on "
                                        f"{' and '.join(missing)} (stored by an older evaluation?)")
        return privleak(auc_model, _split_auc(oracle, score, pair))

    return compute


REFERENCE_SCORE = "mia_loss"  # the per-item score the reference-model attack compares between model and oracle
REFERENCE_SOURCE = ("Carlini et al. 2021, Extracting Training Data from Large Language Models (arXiv 2012.07805), "
                    "reference-model ratio; open-unlearning's mia_reference")


def reference_attack_scores(model_scores: np.ndarray, reference_scores: np.ndarray) -> np.ndarray:
    """Reference-model attack scores, item by item (open-unlearning's ``mia_reference``): the model's LOSS score
    minus the reference model's on the same item, (-NLL_model(a)) - (-NLL_ref(a)) = NLL_ref(a) - NLL_model(a);
    higher = more member-like."""
    return np.asarray(model_scores, dtype=float) - np.asarray(reference_scores, dtype=float)


def _reference_scores(per_item: Mapping[str, Mapping[str, np.ndarray]],
                      oracle: Mapping[str, Mapping[str, np.ndarray]] | None,
                      name: str) -> tuple[tuple[str, str], dict[str, np.ndarray]]:
    """The membership splits and, on each, the reference-attack scores of ``per_item`` against the oracle's
    per-item LOSS scores; ``MissingReferenceError`` without them."""
    pair = _membership_pair(per_item)
    if any(REFERENCE_SCORE not in per_item[split] for split in pair):
        raise MissingInputError(f"{REFERENCE_SCORE} was not computed in this evaluation")
    if oracle is None or any(REFERENCE_SCORE not in oracle.get(split, {}) for split in pair):
        raise MissingReferenceError(f"{name} needs the retain oracle's per-item {REFERENCE_SCORE} on "
                                    f"{' and '.join(pair)}")
    return pair, {split: reference_attack_scores(per_item[split][REFERENCE_SCORE], oracle[split][REFERENCE_SCORE])
                  for split in pair}


def _reference_auc(per_item: Mapping[str, Mapping[str, np.ndarray]],
                   oracle: Mapping[str, Mapping[str, np.ndarray]] | None) -> float:
    (members, non_members), scores = _reference_scores(per_item, oracle, "mia_auc_reference")
    return mia_auc(scores[members], scores[non_members])


def _reference_auc_draws(per_item: Mapping[str, Mapping[str, np.ndarray]],
                         oracle: Mapping[str, Mapping[str, np.ndarray]] | None,
                         draws: list[dict[str, np.ndarray]]) -> np.ndarray:
    (members, non_members), scores = _reference_scores(per_item, oracle, "mia_auc_reference")
    return mia_auc_rows(draw_matrix(scores[members], draws, members),
                        draw_matrix(scores[non_members], draws, non_members))


def _reference_privleak(per_item: Mapping[str, Mapping[str, np.ndarray]],
                        oracle: Mapping[str, Mapping[str, np.ndarray]] | None) -> float:
    """``privleak`` of the reference attack: the model's AUC against the oracle's, the oracle scored against itself."""
    auc_model = _reference_auc(per_item, oracle)
    return privleak(auc_model, _reference_auc(oracle, oracle))


def _reference_privleak_draws(per_item: Mapping[str, Mapping[str, np.ndarray]],
                              oracle: Mapping[str, Mapping[str, np.ndarray]] | None,
                              draws: list[dict[str, np.ndarray]]) -> np.ndarray:
    auc_model = _reference_auc_draws(per_item, oracle, draws)
    auc_oracle = _reference_auc_draws(oracle, oracle, draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        leak = (auc_oracle - auc_model) / (1.0 - auc_oracle) * 100.0
    return np.where(auc_oracle == 1.0, np.nan, leak)


# GradNorm: two statistics of the same per-item gradient (one backward pass per item, ``SplitScores.grad_norm``
# holds both: ``per_item_grad_norms``)
GRADNORM_SCORES: dict[str, tuple[str, Callable[[SplitScores], np.ndarray]]] = {
    "gradnorm": ("GradNorm MIA score (open-unlearning): minus the mean over parameter tensors of each tensor's L2 "
                 "norm of the gradient of the answer NLL, -(1/K) sum_k ||grad_k NLL||_2",
                 lambda s: gradnorm_score(s.grad_norm[TENSOR_MEAN])),
    "gradnorm_l2": ("GradNorm MIA score, global form: minus one L2 norm of the gradient of the answer NLL over all "
                    "parameters, -||grad NLL||_2 (not comparable with open-unlearning's GradNorm)",
                    lambda s: gradnorm_score(s.grad_norm[GLOBAL_L2])),
}

# versions of the families (every score of a family at once: they share their code); bump on a change of numbers
MIA_VERSION = "1"  # mia_<score> and mia_auc_<score>
PRIVLEAK_VERSION = "1"  # privleak_<score>
# the membership splits as roles (``MIA_SPLIT_PAIRS``): forget vs holdout QA, or the task's MIA texts
MEMBERSHIP_ROLE_SETS = (("forget", "holdout"), ("mia",))

for _short, (_description, _per_item) in {**ITEM_SCORES, **GRADNORM_SCORES}.items():
    _item = f"mia_{_short}"
    _extra = dict(roles=MIA_ROLES, requires="grad_norm", reads=()) if _short in GRADNORM_SCORES \
        else dict(roles=(*QA_ROLES, "mia"))
    METRICS.add(_item, ItemMetric(_item, _description + "; higher = more member-like",
                                  direction="higher", forget_direction="lower", per_item=_per_item,
                                  version=MIA_VERSION, **_extra))
    METRICS.add(f"mia_auc_{_short}", ModelMetric(
        f"mia_auc_{_short}", f"ROC AUC of {_item}: forget (members) vs holdout (never trained), or the task's MIA "
        "texts (mia_forget vs mia_holdout: MUSE privleak); 0.5 = no signal",
        direction="half", needs_oracle=False, compute=_auc_metric(_item), compute_draws=_auc_draws(_item),
        version=MIA_VERSION, role_sets=MEMBERSHIP_ROLE_SETS))
    METRICS.add(f"privleak_{_short}", ModelMetric(
        f"privleak_{_short}", f"MUSE PrivLeak of {_item}: (AUC_oracle - AUC) / (1 - AUC_oracle) * 100 = MUSE's "
        "(AUC' - AUC'_oracle) / AUC'_oracle * 100 with AUC' = 1 - AUC (forget as non-members); ideal 0, "
        "negative = under-unlearning (-100 = full leak, AUC = 1), positive = over-unlearning",
        direction="zero", needs_oracle=True, compute=_privleak_metric(_item), compute_draws=_privleak_draws(_item),
        number_format=".1f", version=PRIVLEAK_VERSION, role_sets=MEMBERSHIP_ROLE_SETS))

METRICS.add("mia_auc_reference", ModelMetric(
    "mia_auc_reference", "ROC AUC of the reference-model attack: per item, mia_loss of the model minus mia_loss of the "
    "retain oracle (open-unlearning's mia_reference), forget (members) vs holdout, or the task's MIA texts; 0.5 = no "
    "signal", direction="half", needs_oracle=True, compute=_reference_auc, compute_draws=_reference_auc_draws,
    version=MIA_VERSION, role_sets=MEMBERSHIP_ROLE_SETS, in_ids=False, source=REFERENCE_SOURCE))
METRICS.add("privleak_reference", ModelMetric(
    "privleak_reference", "MUSE PrivLeak of the reference-model attack: (AUC_oracle - AUC) / (1 - AUC_oracle) * 100, "
    "the oracle scored against itself (AUC_oracle = 0.5); ideal 0, negative = under-unlearning, positive = "
    "over-unlearning", direction="zero", needs_oracle=True, compute=_reference_privleak,
    compute_draws=_reference_privleak_draws, number_format=".1f", version=PRIVLEAK_VERSION,
    role_sets=MEMBERSHIP_ROLE_SETS, in_ids=False, source=REFERENCE_SOURCE))
