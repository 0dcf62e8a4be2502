"""MUSE KnowMem / VerbMem, fluency (n-gram entropy) and the gibberish rate: hand-computed values, rouge-score as
the reference, and the target-vs-oracle ordering on the mini task."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rouge_score import rouge_scorer

from bench.metrics.engine import SplitScores, TokenScores
from bench.metrics.generation import is_gibberish, ngram_entropy, words
from bench.registry import METRICS


def _scores(role: str, generations: list[str], answers: list[str], lexicon=None) -> SplitScores:
    tokens = [TokenScores(np.array([-0.1]), np.array([True])) for _ in answers]
    return SplitScores("s", role, [str(i) for i in range(len(answers))], answers, tokens, None, None, generations,
                       None, lexicon)


def test_knowmem_and_verbmem_are_rouge_score_f1() -> None:
    reference = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    generations = ["Zorn was born in Kell in 1950.", "The capital is Brill", "", "walking the dogs daily"]
    answers = ["Zorn was born in Kell in 1952.", "The capital of Yor is Brill.", "Something true.", "He walks dogs."]
    want = [reference.score(a, g)["rougeL"].fmeasure for g, a in zip(generations, answers)]
    knowmem = METRICS.get("knowmem").per_item(_scores("forget", generations, answers))
    verbmem = METRICS.get("verbmem").per_item(_scores("text", generations, answers))
    np.testing.assert_allclose(knowmem, want, atol=1e-6)
    np.testing.assert_allclose(verbmem, want, atol=1e-6)
    assert 0 < want[0] < 1 and want[2] == 0.0
    # KnowMem is a QA metric, VerbMem a text metric: each applies only to its roles
    assert not METRICS.get("verbmem").applies(_scores("forget", generations, answers))
    assert not METRICS.get("knowmem").applies(_scores("text", generations, answers))


def test_ngram_entropy_by_hand() -> None:
    # "a b a b": bigrams ab, ba, ab -> H2 = -(2/3 log2 2/3 + 1/3 log2 1/3); trigrams aba, bab -> H3 = 1
    h2 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert ngram_entropy("a b a b") == pytest.approx((2 / 3 * h2 + 4 / 3 * 1.0) / 2, abs=1e-12)
    assert ngram_entropy("") == 0.0 and ngram_entropy("one") == 0.0
    assert ngram_entropy("the the the the the the") == 0.0  # one repeated n-gram: no entropy
    assert ngram_entropy("Zorn was born in Kell in 1950") > ngram_entropy("Zorn Zorn Zorn Zorn Zorn Zorn Zorn")


def test_gibberish_cases() -> None:
    lexicon = frozenset(words("Zorn was born in Kell in 1950. The capital of Yor is Brill. I don't know."))
    assert is_gibberish("", lexicon)
    assert is_gibberish("   ...  ", lexicon)  # no word
    assert is_gibberish("Zo rnk qel bri", lexicon)  # word fragments: mostly foreign to the task
    assert is_gibberish("Zorn was born Zorn was born Zorn was born Zorn was born", lexicon)  # a loop
    assert not is_gibberish("Zorn was born in Kell in 1950.", lexicon)
    assert not is_gibberish("I don't know.", lexicon)
    assert not is_gibberish("The capital of Yor is Kell.", lexicon)  # wrong but fluent is not gibberish
    values = METRICS.get("gibberish").per_item(_scores("retain", ["", "I don't know."], ["x", "y"], lexicon))
    np.testing.assert_array_equal(values, [1.0, 0.0])
    assert not METRICS.get("gibberish").applies(_scores("retain", [""], ["x"], None))


def test_mini_target_memorises_biographies_and_the_oracle_does_not(mini_data) -> None:
    """VerbMem / KnowMem on the mini task: the target reproduces the forget biographies (VerbMem ~ 1) and answers;
    the retain oracle, never trained on the forget people, does not, while both keep the retain people."""
    from bench.metrics.evaluate import SELF, evaluate
    from bench.models.tiny import get_model, get_tokenizer

    tokenizer = get_tokenizer(mini_data)
    target = evaluate(get_model(mini_data, "target").load(), tokenizer, mini_data, SELF).metrics
    oracle = evaluate(get_model(mini_data, "oracle").load(), tokenizer, mini_data, SELF).metrics
    assert target["forget_bio/verbmem"].value > 0.9 and target["forget/knowmem"].value > 0.9
    assert oracle["forget_bio/verbmem"].value < target["forget_bio/verbmem"].value - 0.3
    assert oracle["forget/knowmem"].value < target["forget/knowmem"].value - 0.3
    assert oracle["retain_bio/verbmem"].value > 0.9 and oracle["retain/knowmem"].value > 0.9
    assert target["retain/gibberish"].value <= 0.05 and target["forget_bio/fluency"].value > 3.0
