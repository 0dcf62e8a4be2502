"""Teacher-forced scoring with shared prompts: a packed row (prompt once, then each answer with its own segment
mask and position ids) gives every answer the log-probs, argmax matches and Min-K%++ moments of its own sequence
scored alone; independent reference: ``model(ids).logits`` of each sequence by itself, with no padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.tokenize import Encoded
from bench.metrics.engine import teacher_forced
from bench.metrics.packing import packs_of

from .conftest import random_llama


def _alone(model, e: Encoded) -> tuple[np.ndarray, np.ndarray]:
    """log p(a_j | prompt, a_<j) and argmax matches from one unpadded forward of the sequence alone."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([e.ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    targets = torch.tensor(e.ids[e.n_prompt:])
    rows = torch.arange(e.n_prompt - 1, len(e.ids) - 1)
    return logp[rows, targets].numpy(), (logits[rows].argmax(-1) == targets).numpy()


def _sequences() -> list[Encoded]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(6):  # six prompts of 3-9 tokens, each with 1-5 answers of 1-6 tokens
        prompt = (1, *rng.integers(3, 50, size=int(rng.integers(2, 9))).tolist())
        for _ in range(int(rng.integers(1, 6))):
            answer = rng.integers(3, 50, size=int(rng.integers(1, 7))).tolist()
            out.append(Encoded(tuple(prompt) + tuple(answer), len(prompt)))
    out.append(Encoded((1, 7, 8), 1))  # a bare-BOS prompt: never packed
    return out


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_score_each_answer_as_its_own_sequence(attention: str) -> None:
    model = random_llama(3, init_std=0.3)
    model.config._attn_implementation = attention
    encoded = _sequences()
    packs = packs_of(encoded, share=True)
    assert len(packs) < len(encoded) and max(len(p.members) for p in packs) > 1  # sharing did happen
    scores = teacher_forced(model, encoded, pad_id=0, batch_size=3)
    for e, s in zip(encoded, scores):
        logprobs, match = _alone(model, e)
        np.testing.assert_allclose(s.logprobs, logprobs, atol=2e-5)
        np.testing.assert_array_equal(s.argmax_match, match)
        assert s.mu is not None and len(s.mu) == len(logprobs)


def test_moments_only_where_asked_and_equal_to_a_full_pass() -> None:
    model = random_llama(4, init_std=0.3)
    encoded = _sequences()
    full = teacher_forced(model, encoded, pad_id=0, batch_size=4)
    wanted = [i % 2 == 0 for i in range(len(encoded))]
    some = teacher_forced(model, encoded, pad_id=0, batch_size=4, moments=wanted)
    for want, a, b in zip(wanted, some, full):
        np.testing.assert_array_equal(a.logprobs, b.logprobs)
        if want:
            np.testing.assert_array_equal(a.mu, b.mu)
            np.testing.assert_array_equal(a.sigma, b.sigma)
        else:
            assert a.mu is None and a.sigma is None


def test_a_packed_row_is_at_most_twice_the_longest_sequence() -> None:
    encoded = [Encoded((1, 5, 6, 7) + (9,) * 4, 4) for _ in range(10)]  # prompt 4, answers 4: longest 8
    packs = packs_of(encoded, share=True)
    assert all(p.length <= 16 for p in packs) and [len(p.members) for p in packs] == [3, 3, 3, 1]
    assert [len(p.members) for p in packs_of(encoded, share=False)] == [1] * 10
