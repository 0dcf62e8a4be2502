"""Metric functions against hand-computed values and independent implementations (REFERENCE.md definitions).

Everything here is fast: no training; the only model is a tiny randomly initialised Llama used to check that the
teacher-forced extraction strength equals the definition evaluated by literal greedy decoding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from scipy.stats import hmean, ks_2samp

from bench.data.tokenize import Encoded
from bench.metrics.base import ItemMetric, MissingReferenceError, ModelMetric
from bench.metrics.engine import SplitScores, TokenScores, teacher_forced
from bench.metrics.generation import rouge_l
from bench.metrics.memorization import (
    exact_memorization,
    extraction_strength,
    normalised_probability,
    probability,
)
from bench.metrics.tofu import forget_quality, model_utility, truth_ratio_raw, truth_ratio_score
from bench.registry import METRICS

from .conftest import random_llama

VOCAB = 50
PAD = 0


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


def tiny_llama(seed: int):
    return random_llama(seed, init_std=0.3)


# --------------------------------------------------------------------------------------------- probability


def test_probability_is_exp_of_mean_logprob() -> None:
    """Prob = exp(-NLL) = exp(mean_i log p_i): log-probs (-1, -2, -3) give exp(-2)."""
    assert probability(np.array([-1.0, -2.0, -3.0])) == pytest.approx(math.exp(-2.0), rel=1e-12)
    assert probability(np.array([0.0, 0.0])) == pytest.approx(1.0)
    # Not the product of the token probabilities (that would be exp(-6)).
    assert probability(np.array([-1.0, -2.0, -3.0])) != pytest.approx(math.exp(-6.0))


def test_normalised_probability_hand_values() -> None:
    """P(a) / (P(a) + sum_k P(pert_k)) with P = exp(-NLL): NLLs 1 vs (2, 3) -> e^-1 / (e^-1 + e^-2 + e^-3)."""
    expected = math.exp(-1) / (math.exp(-1) + math.exp(-2) + math.exp(-3))
    assert normalised_probability(1.0, np.array([2.0, 3.0])) == pytest.approx(expected, rel=1e-12)
    # Equal NLLs: 1 / (1 + k).
    assert normalised_probability(0.7, np.array([0.7, 0.7, 0.7])) == pytest.approx(0.25, rel=1e-12)


# -------------------------------------------------------------------------------------- EM and ES by hand


def test_exact_memorization_is_share_of_matches() -> None:
    """EM = (1/T) sum_k 1[argmax = a_k]: 3 of 5 matches -> 0.6."""
    assert exact_memorization(np.array([True, False, True, True, False])) == pytest.approx(0.6)
    assert exact_memorization(np.array([True, True])) == pytest.approx(1.0)
    assert exact_memorization(np.array([False, False, False])) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ([True, True, True, True], 1.0),  # all match: extractable from the prompt alone
        ([True, True, True, False], 0.0),  # last token wrong: not extractable at all -> 0, NOT 1/T
        ([False, True, True, True], 1 - 1 / 4),  # mismatch only at 0: needs a_0 given -> k = 1
        ([False, True, False, True, True], 1 - 3 / 5),  # mismatches at 0 and 2: k = 3
        ([True, False, True, True, True, True], 1 - 2 / 6),  # mismatch at 1: k = 2
        ([False, False, False], 0.0),
        ([False], 0.0),
        ([True], 1.0),
    ],
)
def test_extraction_strength_hand_values(match: list[bool], expected: float) -> None:
    """ES = 1 - k/T, k = one past the last teacher-forced mismatch (0 if none); a last-token mismatch gives 0."""
    assert extraction_strength(np.array(match)) == pytest.approx(expected, abs=1e-12)


def test_extraction_strength_accepts_integer_matches() -> None:
    """A 0/1 integer array is read as booleans (a mismatch is 0): [1, 0, 1, 1] -> 1 - 2/4."""
    assert extraction_strength(np.array([1, 0, 1, 1])) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ ROUGE-L


def test_rouge_l_hand_lcs_example() -> None:
    """ref 'the cat sat on the mat', pred 'the cat on a mat': LCS = 4 ('the cat on mat'): R = 4/6, P = 4/5,
    F1 = 2PR/(P+R) = 8/11; the first argument is the prediction, recall is relative to the reference."""
    recall, f1 = rouge_l("the cat on a mat", "the cat sat on the mat")
    assert recall == pytest.approx(4 / 6, rel=1e-9)
    assert f1 == pytest.approx(8 / 11, rel=1e-9)
    # Swapping the roles changes the recall to LCS / |pred-as-reference| = 4/5, F1 is symmetric.
    recall_swapped, f1_swapped = rouge_l("the cat sat on the mat", "the cat on a mat")
    assert recall_swapped == pytest.approx(4 / 5, rel=1e-9)
    assert f1_swapped == pytest.approx(8 / 11, rel=1e-9)


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("the cat on a mat", "the cat sat on the mat"),
        ("running cats were jumping", "the cat runs and jumps"),  # stemming matters here
        ("Paris is the capital of France.", "The capital of France is Paris"),
        ("", "nothing was generated"),
        ("completely different words", "no overlap at all"),
    ],
)
def test_rouge_l_matches_rouge_score_package(prediction: str, reference: str) -> None:
    """rouge_l(pred, ref) == RougeScorer(['rougeL'], use_stemmer=True).score(target=ref, prediction=pred)."""
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, prediction)["rougeL"]
    recall, f1 = rouge_l(prediction, reference)
    assert recall == pytest.approx(expected.recall, abs=1e-12)
    assert f1 == pytest.approx(expected.fmeasure, abs=1e-12)


def test_rouge_l_uses_stemmer() -> None:
    """With Porter stemming 'cats running' and 'cat run' are the same tokens: recall = F1 = 1."""
    recall, f1 = rouge_l("cats running", "cat run")
    assert recall == pytest.approx(1.0)
    assert f1 == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- truth ratio


def test_truth_ratio_raw_hand_values() -> None:
    """R = exp(NLL_para - mean_k NLL_pert_k): (1, [2, 4]) -> e^-2; (2, [1, 1]) -> e^1 (geometric mean form)."""
    raw = truth_ratio_raw(np.array([1.0, 2.0]), np.array([[2.0, 4.0], [1.0, 1.0]]))
    np.testing.assert_allclose(raw, [math.exp(-2.0), math.exp(1.0)], rtol=1e-12)
    # The paper's arithmetic mean of probabilities would give mean(e^-2, e^-4) / e^-1, a different number.
    arithmetic = (math.exp(-2) + math.exp(-4)) / 2 / math.exp(-1)
    assert abs(raw[0] - arithmetic) > 1e-3


def test_truth_ratio_score_forget_and_retain_forms() -> None:
    """forget: min(R, 1/R); retain / utility: max(0, 1 - R)."""
    raw = np.array([math.exp(-2.0), math.exp(1.0), 1.0, 0.25])
    np.testing.assert_allclose(truth_ratio_score(raw, "forget"),
                               [math.exp(-2.0), math.exp(-1.0), 1.0, 0.25], rtol=1e-12)
    retain_expected = [1 - math.exp(-2.0), 0.0, 0.0, 0.75]
    np.testing.assert_allclose(truth_ratio_score(raw, "retain"), retain_expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(truth_ratio_score(raw, "utility"), retain_expected, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------- forget quality, utility


def test_forget_quality_is_ks_pvalue() -> None:
    """FQ = scipy.stats.ks_2samp(unlearned, oracle).pvalue on random arrays; identical samples give 1."""
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0.0, 1.0, 40), rng.lognormal(0.3, 1.2, 40)
    assert forget_quality(a, b) == pytest.approx(ks_2samp(a, b).pvalue, rel=1e-12)
    c = rng.lognormal(2.0, 0.5, 40)
    assert forget_quality(a, c) == pytest.approx(ks_2samp(a, c).pvalue, rel=1e-12)
    assert forget_quality(a, c) < 1e-6  # clearly different distributions
    assert forget_quality(a, a.copy()) == pytest.approx(1.0)


def test_model_utility_is_harmonic_mean() -> None:
    """MU = n / sum(1/x): {0.5, 0.25, 1.0} -> 3/7; equal to scipy.stats.hmean; any zero -> 0."""
    values = {"retain/prob": 0.5, "retain/rouge_l": 0.25, "retain/truth_ratio": 1.0}
    assert model_utility(values) == pytest.approx(3 / 7, rel=1e-12)
    rng = np.random.default_rng(1)
    numbers = rng.uniform(0.05, 1.0, 6)
    assert model_utility({f"m{i}": float(x) for i, x in enumerate(numbers)}) == pytest.approx(hmean(numbers))
    assert model_utility({**values, "world_facts/prob": 0.0}) == 0.0


# ------------------------------------------------------------------------------------ registered metrics


def _split(role: str) -> SplitScores:
    """Two hand-made items: answer log-probs, argmax matches, paraphrase and perturbed NLLs, generations."""
    answer = [
        TokenScores(np.array([-1.0, -3.0]), np.array([False, True])),
        TokenScores(np.array([-0.5, -0.5, -0.5, -0.5]), np.array([True, True, False, True])),
    ]
    return SplitScores(split=role, role=role, ids=["a", "b"], answers=["the cat sat on the mat", "paris"],
                       answer=answer, paraphrase_nll=np.array([1.0, 2.0]),
                       perturbed_nll=np.array([[2.0, 4.0], [1.0, 1.0]]),
                       generations=["the cat on a mat", "paris"])


def test_registered_item_metrics_on_hand_scores() -> None:
    """The registered per-item functions read SplitScores: prob exp(mean logp) (normalised on utility), em, es,
    ROUGE-L recall, truth ratio per role."""
    forget, utility = _split("forget"), _split("utility")
    get = METRICS.get
    for name in ("prob", "em", "es", "rouge_l", "truth_ratio", "truth_ratio_raw"):
        assert isinstance(get(name), ItemMetric)
    np.testing.assert_allclose(get("prob").per_item(forget), [math.exp(-2.0), math.exp(-0.5)], rtol=1e-12)
    norm = [math.exp(-2) / (math.exp(-2) + math.exp(-2) + math.exp(-4)),
            math.exp(-0.5) / (math.exp(-0.5) + 2 * math.exp(-1))]
    np.testing.assert_allclose(get("prob").per_item(utility), norm, rtol=1e-12)
    np.testing.assert_allclose(get("em").per_item(forget), [0.5, 0.75])
    np.testing.assert_allclose(get("es").per_item(forget), [1 - 1 / 2, 1 - 3 / 4], atol=1e-12)
    np.testing.assert_allclose(get("rouge_l").per_item(forget), [4 / 6, 1.0], rtol=1e-9)
    np.testing.assert_allclose(get("truth_ratio_raw").per_item(forget), [math.exp(-2), math.exp(1)], rtol=1e-12)
    np.testing.assert_allclose(get("truth_ratio").per_item(forget), [math.exp(-2), math.exp(-1)], rtol=1e-12)
    np.testing.assert_allclose(get("truth_ratio").per_item(utility), [1 - math.exp(-2), 0.0], rtol=1e-12)


def test_item_metric_aggregate_mean_and_stderr() -> None:
    """aggregate: mean and s/sqrt(n) with the sample (ddof=1) standard deviation: [1, 2, 3, 6] -> 3, ~1.0801."""
    metric = METRICS.get("prob")
    value = metric.aggregate(np.array([1.0, 2.0, 3.0, 6.0]), "forget")
    assert value.value == pytest.approx(3.0)
    assert value.stderr == pytest.approx(math.sqrt(14 / 3) / 2)
    assert value.n == 4


def test_forget_quality_metric_requires_oracle() -> None:
    """The registered forget_quality raises MissingReferenceError without the oracle, never returns None."""
    metric = METRICS.get("forget_quality")
    assert isinstance(metric, ModelMetric) and metric.needs_oracle
    per_item = {"forget": {"truth_ratio_raw": np.array([0.5, 1.0, 2.0])}}
    with pytest.raises(MissingReferenceError):
        metric.compute(per_item, None)
    oracle = {"forget": {"truth_ratio_raw": np.array([0.4, 0.9, 3.0, 5.0])}}
    assert metric.compute(per_item, oracle) == pytest.approx(
        ks_2samp([0.5, 1.0, 2.0], [0.4, 0.9, 3.0, 5.0]).pvalue)


def test_model_utility_metric_uses_retain_and_world_facts() -> None:
    """Registered model_utility = hmean of mean(prob, rouge_l, truth_ratio) on retain and world_facts only."""
    metric = METRICS.get("model_utility")
    per_item = {
        "retain": {"prob": np.array([0.4, 0.6]), "rouge_l": np.array([1.0, 0.5]), "truth_ratio": np.array([0.2])},
        "world_facts": {"prob": np.array([0.3]), "rouge_l": np.array([0.9]), "truth_ratio": np.array([0.1, 0.3])},
        "forget": {"prob": np.array([0.0]), "rouge_l": np.array([0.0]), "truth_ratio": np.array([0.0])},
    }
    expected = 6 / (1 / 0.5 + 1 / 0.75 + 1 / 0.2 + 1 / 0.3 + 1 / 0.9 + 1 / 0.2)
    assert metric.compute(per_item, None) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ ES by teacher forcing vs literal decoding


def _greedy(model: torch.nn.Module, context: list[int], n: int) -> list[int]:
    """Literal greedy decoding: n times, run the model on the whole sequence and append the argmax."""
    seq = list(context)
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            seq.append(int(logits.argmax()))
    return seq[len(context):]


def _literal_es(model: torch.nn.Module, prompt: list[int], answer: list[int]) -> float:
    """ES from the definition: 1 - (1/T) min{k : greedy from [q, a_<k] gives a_>=k exactly}, 0 if no k < T works."""
    t = len(answer)
    for k in range(t):
        if _greedy(model, prompt + answer[:k], t - k) == answer[k:]:
            return 1.0 - k / t
    return 0.0


def _not_argmax(model: torch.nn.Module, context: list[int]) -> int:
    """A token that is not the greedy choice after ``context`` (the runner-up)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([context])).logits[0, -1]
    return int(logits.topk(2).indices[1])


def test_extraction_strength_matches_literal_greedy_decoding() -> None:
    """For answers built to be extractable from exactly position j+1 (greedy prefix, a non-argmax token at j,
    greedy continuation), fully greedy (ES 1), wrong last token (ES 0) and random answers: the definition by
    literal greedy decoding == extraction_strength(teacher-forced argmax matches) == the constructed value."""
    model = tiny_llama(0)
    gen = torch.Generator().manual_seed(1)
    t = 6
    prompts = [[1, *torch.randint(3, VOCAB, (n,), generator=gen).tolist()] for n in (3, 5, 4, 6, 2, 4, 3)]
    answers: list[list[int]] = []
    expected: list[float | None] = []
    for prompt, j in zip(prompts[:5], (None, 0, 2, 4, t - 1), strict=True):
        if j is None:
            answer = _greedy(model, prompt, t)
            expected.append(1.0)
        else:
            head = _greedy(model, prompt, j)
            wrong = _not_argmax(model, prompt + head)
            answer = head + [wrong] + _greedy(model, prompt + head + [wrong], t - j - 1)
            expected.append(1.0 - (j + 1) / t)
        answers.append(answer)
    for _ in prompts[5:]:  # random answers: almost surely not extractable
        answers.append(torch.randint(3, VOCAB, (t,), generator=gen).tolist())
        expected.append(None)

    encoded = [Encoded(tuple(p + a), len(p)) for p, a in zip(prompts, answers, strict=True)]
    scores = teacher_forced(model, encoded, pad_id=PAD, batch_size=3)
    assert len(scores) == len(prompts)
    literal = [_literal_es(model, p, a) for p, a in zip(prompts, answers, strict=True)]
    for answer, score, es_def, want in zip(answers, scores, literal, expected, strict=True):
        assert len(score.argmax_match) == len(answer)
        assert extraction_strength(score.argmax_match) == pytest.approx(es_def, abs=1e-12)
        if want is not None:  # the construction gives the intended value: 1, 5/6, 1/2, 1/6, 0
            assert es_def == pytest.approx(want, abs=1e-12)


def test_teacher_forced_logprobs_match_unbatched_computation() -> None:
    """teacher_forced (length-sorted, padded batches) gives, in input order, log softmax(model(seq))[a_i] at the
    answer positions and argmax == a_i, as computed on each unpadded sequence alone."""
    model = tiny_llama(3)
    gen = torch.Generator().manual_seed(4)
    encoded = []
    for n_prompt, n_answer in ((4, 3), (2, 6), (5, 1), (3, 4)):
        ids = [1, *torch.randint(3, VOCAB, (n_prompt + n_answer - 1,), generator=gen).tolist()]
        encoded.append(Encoded(tuple(ids), n_prompt))
    scores = teacher_forced(model, encoded, pad_id=PAD, batch_size=2)
    for e, s in zip(encoded, scores, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([e.ids])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        positions = range(e.n_prompt - 1, len(e.ids) - 1)  # logits at i predict token i + 1
        want = [float(logp[i, e.ids[i + 1]]) for i in positions]
        match = [int(logits[i].argmax()) == e.ids[i + 1] for i in positions]
        np.testing.assert_allclose(s.logprobs, want, rtol=1e-5, atol=1e-5)
        assert s.argmax_match.tolist() == match
        assert s.mean_nll == pytest.approx(-np.mean(want), rel=1e-5)


def test_es_rephrased_reads_the_answer_after_the_paraphrased_question(mini_data) -> None:
    """es_rephrased = ES of the true answer given the PARAPHRASED question, served by the split's one teacher-forced
    pass; equal to a separate teacher-forced pass over (paraphrased question, answer) pairs."""
    from bench.data.tokenize import encode_qa
    from bench.metrics.engine import score_split, teacher_forced
    from bench.metrics.memorization import extraction_strength
    from bench.models.tiny import get_model, get_tokenizer
    from bench.registry import METRICS

    tokenizer = get_tokenizer(mini_data)
    model = get_model(mini_data, "target").load()
    ds = mini_data.eval_splits()["forget"]
    cfg = mini_data.config
    scores = score_split(model, tokenizer, cfg.prompt_template, ds, "forget", "forget", 16, 8)
    got = METRICS.get("es_rephrased").per_item(scores)
    pairs = [encode_qa(tokenizer, cfg.prompt_template, q, a, add_eos=False)
             for q, a in zip(ds["paraphrased_question"], ds["answer"])]
    expected = [extraction_strength(t.argmax_match) for t in teacher_forced(model, pairs, tokenizer.pad_token_id, 7)]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert len(got) == len(ds) and 0.0 <= got.mean() <= 1.0
