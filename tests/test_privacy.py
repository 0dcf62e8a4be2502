"""Membership-inference scores, MIA AUC and PrivLeak (bench.metrics.privacy) against hand computations, sklearn and
the published formulas; the Min-K%++ moments of the teacher-forced pass against the next-token distribution."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from bench.data.tokenize import Encoded
from bench.metrics.base import ItemMetric, MissingReferenceError, ModelMetric
from bench.metrics.engine import SplitScores, TokenScores, teacher_forced
from bench.metrics.privacy import (
    mia_auc,
    min_k_plus_plus_score,
    min_k_plus_plus_tokens,
    min_k_score,
    privleak,
    zlib_score,
)
from bench.registry import METRICS

from .conftest import RANDOM_LLAMA_VOCAB, random_llama

SHORTS = ("loss", "zlib", "mink", "minkpp")
LN2 = math.log(2.0)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


# ------------------------------------------------------------------------------------- per-item MIA scores


def _split(role: str = "forget") -> SplitScores:
    """Two hand-made items with log-probs and Min-K%++ moments (mu, sigma) per answer token."""
    answer = [
        TokenScores(np.array([-0.1, -2.0, -0.5, -3.0, -1.0]), np.ones(5, dtype=bool),
                    mu=np.array([-1.0, -1.0, -1.0, -2.0, -0.5]), sigma=np.array([0.5, 2.0, 1.0, 0.5, 0.25])),
        TokenScores(np.array([-1.0, -3.0]), np.array([False, True]),
                    mu=np.array([-2.0, -2.0]), sigma=np.array([1.0, 4.0])),
    ]
    return SplitScores(split=role, role=role, ids=["a", "b"], answers=["the cat sat on the mat", "paris"],
                       answer=answer, paraphrase_nll=np.array([1.0, 2.0]),
                       perturbed_nll=np.array([[2.0, 4.0], [1.0, 1.0]]), generations=["the cat", "paris"],
                       answer_rephrased=answer)


def test_mia_item_scores_hand_values() -> None:
    """loss = mean log p; zlib = MEAN log p (not the sum) / len(zlib(answer)); Min-K% = mean of the lowest
    floor(0.4 T) (at least 1) log-probs; Min-K%++ = the same over (log p - mu) / sigma."""
    scores = _split()
    get = METRICS.get
    for short in SHORTS:
        assert isinstance(get(f"mia_{short}"), ItemMetric)
    np.testing.assert_allclose(get("mia_loss").per_item(scores), [-6.6 / 5, -2.0], atol=1e-6)
    z_cat, z_paris = len(zlib.compress(b"the cat sat on the mat")), len(zlib.compress(b"paris"))
    assert z_cat == 27 and z_paris == 13  # zlib: 2 header bytes + deflate + 4 adler bytes
    # mean log p: item a (-0.1 - 2 - 0.5 - 3 - 1) / 5 = -1.32, item b (-1 - 3) / 2 = -2
    np.testing.assert_allclose(get("mia_zlib").per_item(scores), [-1.32 / 27, -2.0 / 13], atol=1e-9)
    # T = 5: floor(2.0) = 2 lowest of (-0.1, -2, -0.5, -3, -1) = (-3, -2); T = 2: floor(0.8) -> 1 lowest = -3.
    np.testing.assert_allclose(get("mia_mink").per_item(scores), [-2.5, -3.0], atol=1e-6)
    # (log p - mu) / sigma: item a (1.8, -0.5, 0.5, -2, -2) -> lowest two -2, -2; item b (1, -0.25) -> -0.25.
    np.testing.assert_allclose(min_k_plus_plus_tokens(scores.answer[0].logprobs, scores.answer[0].mu,
                                                      scores.answer[0].sigma), [1.8, -0.5, 0.5, -2.0, -2.0])
    np.testing.assert_allclose(get("mia_minkpp").per_item(scores), [-2.0, -0.25], atol=1e-6)


def test_zlib_score_is_mean_log_prob_over_compressed_length() -> None:
    """Carlini et al. 2021 / MUSE / open-unlearning: score = (1/T) sum_t log p_t / len(zlib.compress(text)); the
    mean, so the same per-token log-probs repeated twice give the same numerator."""
    text = "Alice Smith was born in Lisbon in 1970."
    z = len(zlib.compress(text.encode("utf-8")))
    assert z == 43  # Python's zlib, default level: 2 header bytes + deflate + 4 adler bytes
    logp = np.array([-0.5, -1.5, -0.25, -1.75])  # sum -4, mean -1
    assert zlib_score(logp, text) == pytest.approx(-1.0 / 43, abs=1e-15)
    assert zlib_score(np.r_[logp, logp], text) == pytest.approx(-1.0 / 43, abs=1e-15)  # not -8 / 43
    assert zlib_score(np.array([-2.0]), "aaaaaaaaaaaaaaaaaaaa") == pytest.approx(-2.0 / len(zlib.compress(b"a" * 20)))


def test_min_k_helpers_and_degenerate_sigma() -> None:
    """Min-K% with k = 1 is the LOSS score; a zero sigma (constant log p on the support) scores 0, not inf/nan."""
    logp = np.array([-0.3, -1.2, -0.7])
    assert min_k_score(logp, k=1.0) == pytest.approx(logp.mean(), abs=1e-12)
    assert min_k_score(logp, k=0.4) == pytest.approx(-1.2)
    assert min_k_plus_plus_score(np.array([-LN2, -LN2]), np.array([-LN2, -1.0]), np.array([0.0, 1.0]),
                                 k=1.0) == pytest.approx((0.0 + (1.0 - LN2)) / 2)


def test_minkpp_requires_moments() -> None:
    """Hand-made TokenScores without mu / sigma cannot give Min-K%++: a clear error, not a silent number."""
    scores = _split()
    scores.answer[0] = TokenScores(scores.answer[0].logprobs, scores.answer[0].argmax_match)
    with pytest.raises(ValueError, match="mu"):
        METRICS.get("mia_minkpp").per_item(scores)


# --------------------------------------------------------------------- Min-K%++ moments of the engine pass


def _hand_moments(logits: list[float]) -> tuple[float, float, list[float]]:
    """mu = sum_z p(z) log p(z), sigma = sqrt(sum_z p(z) (log p(z) - mu)^2), p = softmax(logits), in pure Python."""
    top = max(logits)
    norm = top + math.log(sum(math.exp(v - top) for v in logits))
    logp = [v - norm for v in logits]
    mu = sum(math.exp(lp) * lp for lp in logp)
    var = sum(math.exp(lp) * (lp - mu) ** 2 for lp in logp)
    return mu, math.sqrt(var), logp


class _FixedLogits(torch.nn.Module):
    """A 'model' whose next-token logits at every position are one fixed vector."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.row = torch.nn.Parameter(torch.tensor(logits), requires_grad=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.row.expand(*input_ids.shape, -1).clone())


def test_minkpp_on_hand_built_distribution() -> None:
    """p = (1/2, 1/4, 1/4) (logits log 2, 0, 0, plus a -inf token with p = 0): mu = -1.5 ln 2, sigma = 0.5 ln 2;
    the per-token Min-K%++ value is +1 for the likely token and -1 for an unlikely one, as teacher_forced gives."""
    model = _FixedLogits([LN2, 0.0, 0.0, float("-inf")])
    scores = teacher_forced(model, [Encoded((0, 0, 1, 2, 0), 2)], pad_id=3, batch_size=4)[0]
    np.testing.assert_allclose(scores.logprobs, [-2 * LN2, -2 * LN2, -LN2], atol=1e-6)
    np.testing.assert_allclose(scores.mu, [-1.5 * LN2] * 3, atol=1e-6)
    np.testing.assert_allclose(scores.sigma, [0.5 * LN2] * 3, atol=1e-6)
    np.testing.assert_allclose(min_k_plus_plus_tokens(scores.logprobs, scores.mu, scores.sigma), [-1, -1, 1],
                               atol=1e-5)
    assert scores.mu.dtype == np.float64 and scores.sigma.dtype == np.float64


def test_teacher_forced_moments_match_hand_computation_on_random_llama() -> None:
    """On a random Llama, batched and length-sorted: mu_t and sigma_t at each answer position equal the pure-Python
    moments of softmax(model(sequence alone).logits[t]), and the Min-K%++ score equals its published formula."""
    model = random_llama(5, init_std=0.3)
    gen = torch.Generator().manual_seed(6)
    encoded = []
    for n_prompt, n_answer in ((3, 4), (5, 2), (2, 6)):
        ids = [1, *torch.randint(3, RANDOM_LLAMA_VOCAB, (n_prompt + n_answer - 1,), generator=gen).tolist()]
        encoded.append(Encoded(tuple(ids), n_prompt))
    scores = teacher_forced(model, encoded, pad_id=0, batch_size=2)
    for e, s in zip(encoded, scores, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([e.ids])).logits[0].double().tolist()
        positions = range(e.n_prompt - 1, len(e.ids) - 1)
        hand = [_hand_moments(logits[i]) for i in positions]
        np.testing.assert_allclose(s.mu, [h[0] for h in hand], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s.sigma, [h[1] for h in hand], rtol=1e-5, atol=1e-5)
        logp = [h[2][e.ids[i + 1]] for h, i in zip(hand, positions, strict=True)]
        np.testing.assert_allclose(s.logprobs, logp, atol=1e-5)
        per_token = sorted((lp - mu) / sd for lp, (mu, sd, _) in zip(logp, hand, strict=True))
        n = max(1, int(0.4 * len(per_token)))
        assert min_k_plus_plus_score(s.logprobs, s.mu, s.sigma) == pytest.approx(sum(per_token[:n]) / n, abs=1e-4)
    no_moments = teacher_forced(model, encoded, pad_id=0, batch_size=2, moments=False)
    assert all(s.mu is None and s.sigma is None for s in no_moments)
    for a, b in zip(scores, no_moments, strict=True):
        np.testing.assert_array_equal(a.logprobs, b.logprobs)


# ---------------------------------------------------------------------------------------- AUC and PrivLeak


def _per_item(rng: np.random.Generator, shift: float) -> dict[str, dict[str, np.ndarray]]:
    return {"forget": {f"mia_{s}": rng.normal(shift, 1.0, 12).round(1) for s in SHORTS},
            "holdout": {f"mia_{s}": rng.normal(0.0, 1.0, 9).round(1) for s in SHORTS}}


def test_mia_auc_equals_sklearn_and_pair_count() -> None:
    """mia_auc_<s> = roc_auc_score([1]*forget + [0]*holdout, scores) = P(s_f > s_h) + P(tie) / 2 (rounded scores
    make ties)."""
    rng = np.random.default_rng(0)
    per_item = _per_item(rng, 0.8)
    for short in SHORTS:
        metric = METRICS.get(f"mia_auc_{short}")
        assert isinstance(metric, ModelMetric) and not metric.needs_oracle
        f, h = per_item["forget"][f"mia_{short}"], per_item["holdout"][f"mia_{short}"]
        want = roc_auc_score(np.r_[np.ones(len(f)), np.zeros(len(h))], np.r_[f, h])
        pairs = np.mean([(x > y) + 0.5 * (x == y) for x in f for y in h])
        assert metric.compute(per_item, None) == pytest.approx(want, abs=1e-12)
        assert want == pytest.approx(pairs, abs=1e-12)
    assert mia_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert mia_auc(np.array([1.0]), np.array([1.0])) == 0.5
    with pytest.raises(ValueError):
        mia_auc(np.array([1.0]), np.array([]))


def test_privleak_formula_and_oracle_requirement() -> None:
    """privleak_<s> = (AUC_oracle - AUC_model) / (1 - AUC_oracle) * 100 with AUC_oracle from the oracle's per-item
    values on the same splits; a missing oracle (or one without holdout rows) raises MissingReferenceError."""
    rng = np.random.default_rng(1)
    model, oracle = _per_item(rng, 1.5), _per_item(rng, 0.1)
    for short in SHORTS:
        metric = METRICS.get(f"privleak_{short}")
        assert isinstance(metric, ModelMetric) and metric.needs_oracle
        auc_m = METRICS.get(f"mia_auc_{short}").compute(model, None)
        auc_o = METRICS.get(f"mia_auc_{short}").compute(oracle, None)
        # MUSE's own orientation: AUC' = 1 - AUC, PrivLeak = (AUC'_model - AUC'_oracle) / AUC'_oracle * 100
        muse_m, muse_o = 1 - auc_m, 1 - auc_o
        assert metric.compute(model, oracle) == pytest.approx((muse_m - muse_o) / muse_o * 100, abs=1e-9)
        assert metric.compute(model, oracle) < 0  # the model separates forget from holdout better: under-unlearning
        assert metric.compute(oracle, oracle) == 0.0
        with pytest.raises(MissingReferenceError):
            metric.compute(model, None)
        with pytest.raises(MissingReferenceError):
            metric.compute(model, {"forget": oracle["forget"]})
    # hand arithmetic: oracle AUC 0.5 (AUC' 0.5); model AUC 0.9 (AUC' 0.1): (0.1 - 0.5) / 0.5 = -80%
    assert privleak(0.9, 0.5) == pytest.approx(-80.0)
    # model AUC 0.4 (AUC' 0.6): (0.6 - 0.5) / 0.5 = +20%, over-unlearning
    assert privleak(0.4, 0.5) == pytest.approx(20.0)
    # oracle AUC 0.6 (AUC' 0.4), model AUC 0.7 (AUC' 0.3): (0.3 - 0.4) / 0.4 = -25%
    assert privleak(0.7, 0.6) == pytest.approx(-25.0)
    assert math.isnan(privleak(0.8, 1.0))  # AUC'_oracle = 0: undefined


# MUSE (Shi et al. 2024, arXiv 2407.06460, Table 3): the retrained model's AUC' (forget = non-members) and the
# target's published PrivLeak, per corpus
MUSE_RETRAIN_AUC_PRIME = {"news": 0.4772, "books": 0.5393}
MUSE_TARGET_PRIVLEAK = {"news": -99.81, "books": -57.26}


@pytest.mark.parametrize("corpus", ["news", "books"])
def test_privleak_reproduces_muse_published_constants(corpus: str) -> None:
    """With AUC_oracle = 1 - AUC'_retrain and the target's AUC' implied by its published PrivLeak, privleak gives the
    published number to 2 decimals (News: target AUC' = 0.4772 * (1 - 0.9981) = 0.00090668, AUC 0.99909332)."""
    oracle_prime, published = MUSE_RETRAIN_AUC_PRIME[corpus], MUSE_TARGET_PRIVLEAK[corpus]
    target_prime = oracle_prime * (1 + published / 100)  # MUSE: PrivLeak = (AUC'_t - AUC'_r) / AUC'_r * 100
    assert privleak(1 - target_prime, 1 - oracle_prime) == pytest.approx(published, abs=5e-3)
    assert round(privleak(1 - target_prime, 1 - oracle_prime), 2) == published
    if corpus == "news":
        assert 1 - target_prime == pytest.approx(0.99909332, abs=1e-8)  # by hand: 0.4772 * 0.0019 = 0.00090668
        assert privleak(0.99909332, 1 - 0.4772) == pytest.approx(-99.81, abs=1e-9)
    # the retrained model against itself reads 0
    assert privleak(1 - oracle_prime, 1 - oracle_prime) == 0.0


@pytest.mark.parametrize("auc_oracle", [0.0, 0.3, 1 - 0.5393, 0.5, 1 - 0.4772, 0.9, 0.999])
def test_privleak_full_leak_reads_minus_100_for_any_oracle(auc_oracle: float) -> None:
    """A model whose MIA separates forget from holdout perfectly (AUC = 1, MUSE AUC' = 0) reads -100 whatever the
    oracle; a model at the oracle's AUC reads 0; a perfectly inverted one (AUC = 0) reads AUC_oracle / (1 -
    AUC_oracle) * 100 (> 0: over-unlearning)."""
    assert privleak(1.0, auc_oracle) == pytest.approx(-100.0, abs=1e-12)
    assert privleak(auc_oracle, auc_oracle) == 0.0
    assert privleak(0.0, auc_oracle) == pytest.approx(auc_oracle / (1 - auc_oracle) * 100, abs=1e-9)


def test_privleak_metric_end_to_end_on_hand_made_scores() -> None:
    """Explicit per-item scores: the oracle's forget (0.3, 0.6) vs holdout (0.1, 0.5): pairs (0.3 > 0.1), (0.3 < 0.5),
    (0.6 > 0.1), (0.6 > 0.5) -> AUC 3/4; the model's forget (0.7, 0.8) above every holdout score -> AUC 1.
    PrivLeak = (0.75 - 1) / (1 - 0.75) * 100 = -100; the oracle scored as the model -> 0; a model with forget
    (0.2, 0.4) vs the same holdout: (0.2 > 0.1), (0.2 < 0.5), (0.4 > 0.1), (0.4 < 0.5) -> AUC 1/2, PrivLeak =
    (0.75 - 0.5) / 0.25 * 100 = +100 (over-unlearning; in MUSE's terms AUC' 0.5 vs 0.25: (0.5 - 0.25) / 0.25)."""
    holdout = np.array([0.1, 0.5])
    oracle = {"forget": {"mia_loss": np.array([0.3, 0.6])}, "holdout": {"mia_loss": holdout}}
    leak = {"forget": {"mia_loss": np.array([0.7, 0.8])}, "holdout": {"mia_loss": holdout}}
    over = {"forget": {"mia_loss": np.array([0.2, 0.4])}, "holdout": {"mia_loss": holdout}}
    metric = METRICS.get("privleak_loss")
    assert METRICS.get("mia_auc_loss").compute(oracle, None) == 0.75
    assert metric.compute(leak, oracle) == pytest.approx(-100.0, abs=1e-12)
    assert metric.compute(oracle, oracle) == 0.0
    assert metric.compute(over, oracle) == pytest.approx(100.0, abs=1e-12)


def test_privacy_descriptions_state_the_muse_formula() -> None:
    """The registered descriptions state the formula and sign that the code computes."""
    for short in (*SHORTS, "gradnorm", "gradnorm_l2"):
        text = METRICS.get(f"privleak_{short}").description
        assert "(AUC_oracle - AUC) / (1 - AUC_oracle) * 100" in text
        assert "negative = under-unlearning" in text and "positive = over-unlearning" in text
        assert METRICS.get(f"privleak_{short}").direction == "zero"
    assert "not the sum" in METRICS.get("mia_zlib").description


# ------------------------------------------------------------------------------------ evaluate on the mini task


def test_holdout_role_with_every_item_metric() -> None:
    """Every registered item metric defined on the holdout role scores it (plain answers: Prob unnormalised) with
    finite values."""
    scores = _split("holdout")
    scores.lexicon = frozenset({"the", "cat", "sat", "on", "mat", "paris"})
    for name in METRICS.names():
        metric = METRICS.get(name)
        if isinstance(metric, ItemMetric) and metric.applies(scores):
            values = metric.per_item(scores)
            assert values.shape == (2,) and np.all(np.isfinite(values)), name
    np.testing.assert_allclose(METRICS.get("prob").per_item(scores), [math.exp(-6.6 / 5), math.exp(-2.0)])


def test_evaluate_mini_scores_holdout_and_mia(mini_data) -> None:
    """evaluate() on synthetic-mini: holdout is scored with every item metric; mia_auc_* lie in [0, 1]; as its own
    reference PrivLeak is 0; against the retain oracle the target (trained on the forget people) leaks: its
    forget-vs-holdout LOSS AUC exceeds the oracle's, so PrivLeak < 0 (under-unlearning, MUSE's sign)."""
    from bench.metrics.evaluate import SELF, evaluate
    from bench.models.tiny import get_model, get_tokenizer

    assert "holdout" in mini_data.eval_splits()
    tokenizer = get_tokenizer(mini_data)
    oracle_eval = evaluate(get_model(mini_data, "oracle").load(), tokenizer, mini_data, SELF)
    target_eval = evaluate(get_model(mini_data, "target").load(), tokenizer, mini_data, oracle_eval.per_item)
    # holdout is scored on its answers only (the MIA non-members): every metric that reads just the answer
    item_names = [n for n in METRICS.names() if isinstance(METRICS.get(n), ItemMetric)
                  and "holdout" in METRICS.get(n).roles and METRICS.get(n).reads == ("answer",)
                  and METRICS.get(n).requires is None]
    assert {"prob", "es", "mia_loss", "mia_minkpp"} <= set(item_names)
    for evaluation in (oracle_eval, target_eval):
        assert len(evaluation.ids["holdout"]) == min(len(mini_data.holdout), mini_data.config.eval.max_items)
        for name in item_names:
            assert f"holdout/{name}" in evaluation.metrics
        assert "holdout/truth_ratio" not in evaluation.metrics and "holdout/rouge_l" not in evaluation.metrics
        for short in SHORTS:
            assert 0.0 <= evaluation.metrics[f"mia_auc_{short}"].value <= 1.0
    for short in SHORTS:
        assert oracle_eval.metrics[f"privleak_{short}"].value == 0.0
    assert target_eval.metrics["mia_auc_loss"].value > oracle_eval.metrics["mia_auc_loss"].value
    assert target_eval.metrics["privleak_loss"].value < 0.0
    # the reference attack against the oracle: no signal on the oracle itself, a leak on the target
    assert oracle_eval.metrics["mia_auc_reference"].value == 0.5
    assert oracle_eval.metrics["privleak_reference"].value == 0.0
    assert target_eval.metrics["mia_auc_reference"].value > 0.5 > target_eval.metrics["privleak_reference"].value


def test_privacy_model_metrics_are_best_at_their_ideal_value_and_sort_by_distance() -> None:
    """PrivLeak is best at 0 and a membership AUC at 0.5: positive PrivLeak (forget looks less familiar than to
    the oracle) is over-unlearning, not better. Boards mark them →0 / →½ and sort by distance."""
    from types import SimpleNamespace

    from bench.board.format import ARROWS
    from bench.board.table import _row_order
    from bench.board.table import order_text as _order_text
    from bench.grid.columns import column_direction
    from bench.metrics.base import distance_to_ideal

    assert column_direction("privleak_minkpp") == "zero" == column_direction("calibrated/privleak_gradnorm")
    assert column_direction("privleak_gradnorm_l2") == "zero"
    assert column_direction("mia_auc_gradnorm") == "half" == column_direction("mia_auc_gradnorm_l2")
    assert column_direction("mia_auc_loss") == "half"
    assert (ARROWS["zero"], ARROWS["half"]) == ("→0", "→½")
    assert distance_to_ideal("half", 0.2) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="no ideal value"):
        distance_to_ideal("lower", 1.0)
    board = SimpleNamespace(sort=SimpleNamespace(by="privleak_loss", descending=True))
    rows = [{"m": m, "privleak_loss": v} for m, v in (("under", -30.0), ("over", 5.0), ("none", float("nan")),
                                                        ("best", -2.0))]
    assert [r["m"] for r in sorted(rows, key=_row_order(board, "privleak_loss"))] == ["best", "over", "under", "none"]
    assert _order_text(board) == "closest to 0 first"
    board.sort.by = "forget/es"
    assert _order_text(board) == "descending"


def test_batched_bootstrap_of_aucs_and_privleak_equals_the_per_draw_loop():
    """The AUC and PrivLeak metrics compute all bootstrap draws in one rank call (``compute_draws``); every
    replicate must equal the per-draw computation bit for bit (ties included), and one row scikit-learn's AUC."""
    from bench.metrics.base import bootstrap_draws, bootstrap_model_replicates
    from bench.metrics.privacy import mia_auc_rows

    rng = np.random.default_rng(3)
    def split_values(n: int) -> dict[str, np.ndarray]:
        return {"mia_loss": np.round(rng.normal(size=n), 1), "mia_zlib": rng.normal(size=n)}  # rounding: ties

    model = {"forget": split_values(12), "holdout": split_values(9)}
    oracle = {"forget": split_values(12), "holdout": split_values(9)}
    metrics = [METRICS.get(f"{kind}_{score}") for kind in ("mia_auc", "privleak") for score in ("loss", "zlib")]
    draws = bootstrap_draws({"forget": 12, "holdout": 9}, resamples=50)
    computes = {m.name: m.compute for m in metrics}
    for ref in (oracle, model):  # another model's oracle, and a model that is its own reference
        loop = bootstrap_model_replicates(computes, model, ref, draws)
        batched = bootstrap_model_replicates(computes, model, ref, draws, {m.name: m.compute_draws for m in metrics})
        for name in computes:
            assert np.array_equal(loop[name], batched[name], equal_nan=True), name
    row = mia_auc_rows(model["forget"]["mia_loss"][None], model["holdout"]["mia_loss"][None])[0]
    assert row == pytest.approx(roc_auc_score([1] * 12 + [0] * 9, np.concatenate(
        [model["forget"]["mia_loss"], model["holdout"]["mia_loss"]])), abs=1e-12)


def test_reference_attack_auc_equals_sklearn_in_open_unlearnings_orientation() -> None:
    """mia_auc_reference: per item s = mia_loss(model) - mia_loss(oracle) = NLL_oracle - NLL_model; its AUC equals
    roc_auc_score with open-unlearning's convention (score NLL_model - NLL_ref, forget labelled 0, holdout 1); the
    oracle scored against itself gives 0.5; privleak_reference = (0.5 - AUC) / 0.5 * 100; both need the oracle."""
    rng = np.random.default_rng(4)
    nll_model = {"forget": rng.gamma(1.0, 0.5, 12).round(2), "holdout": rng.gamma(2.0, 1.0, 9).round(2)}
    nll_oracle = {"forget": rng.gamma(2.0, 1.0, 12).round(2), "holdout": rng.gamma(2.0, 1.0, 9).round(2)}
    model = {split: {"mia_loss": -values} for split, values in nll_model.items()}
    oracle = {split: {"mia_loss": -values} for split, values in nll_oracle.items()}
    ou_scores = np.r_[nll_model["forget"] - nll_oracle["forget"], nll_model["holdout"] - nll_oracle["holdout"]]
    want = roc_auc_score(np.r_[np.zeros(12), np.ones(9)], ou_scores)
    auc, leak = METRICS.get("mia_auc_reference"), METRICS.get("privleak_reference")
    assert auc.needs_oracle and leak.needs_oracle and not auc.in_ids and not leak.in_ids
    assert auc.compute(model, oracle) == pytest.approx(want, abs=1e-12)
    assert want > 0.6  # the model's forget answers are likelier than the oracle's: the attack separates them
    assert auc.compute(oracle, oracle) == 0.5
    assert leak.compute(model, oracle) == pytest.approx((0.5 - want) / 0.5 * 100, abs=1e-9)
    assert leak.compute(oracle, oracle) == 0.0
    for metric in (auc, leak):
        with pytest.raises(MissingReferenceError):
            metric.compute(model, None)
        with pytest.raises(MissingReferenceError):
            metric.compute(model, {"forget": oracle["forget"]})


def test_reference_attack_bootstrap_draws_equal_the_per_draw_loop() -> None:
    from bench.metrics.base import bootstrap_draws, bootstrap_model_replicates

    rng = np.random.default_rng(5)
    model = {"forget": {"mia_loss": rng.normal(size=12).round(1)}, "holdout": {"mia_loss": rng.normal(size=9)}}
    oracle = {"forget": {"mia_loss": rng.normal(size=12)}, "holdout": {"mia_loss": rng.normal(size=9).round(1)}}
    metrics = [METRICS.get("mia_auc_reference"), METRICS.get("privleak_reference")]
    draws = bootstrap_draws({"forget": 12, "holdout": 9}, resamples=50)
    computes = {m.name: m.compute for m in metrics}
    for ref in (oracle, model):
        loop = bootstrap_model_replicates(computes, model, ref, draws)
        batched = bootstrap_model_replicates(computes, model, ref, draws, {m.name: m.compute_draws for m in metrics})
        for name in computes:
            assert np.array_equal(loop[name], batched[name], equal_nan=True), name


def test_metrics_added_without_rekeying_stay_out_of_the_ids_until_bumped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference attack's metrics are evaluated on every task with forget and holdout but stay out of its
    ``metric_versions`` (so of every run and reference id) at version 1; a bump of their version enters the ids."""
    import dataclasses

    from bench.data.tasks import load_task_config
    from bench.metrics.identity import evaluated_metrics, metric_versions

    from .conftest import MINI

    config = load_task_config(MINI)
    assert {"mia_auc_reference", "privleak_reference"} <= set(evaluated_metrics(config))
    assert not {"mia_auc_reference", "privleak_reference"} & set(metric_versions(config))
    monkeypatch.setitem(METRICS._entries, "privleak_reference",
                        dataclasses.replace(METRICS.get("privleak_reference"), version="2"))
    assert metric_versions(config)["privleak_reference"] == "2"
