"""Random labels: a naive unlearning method a new user writes first, as a plug-in (``plugins:`` on a board, or
``--plugin``). It is the method of issue 19's report, kept as a test method: the paper's G-effect of its objective
reads as "the forget risk fell" while the forget-answer NLL rises, because the optimizer (AdamW) does not step along
the objective's gradient, so the board's G-effect table shows it beside the realised and measured changes.

L = E_forget [ -(1/T) sum_i log p(r_i | q, a_<i) ]: fine-tune on the forget questions with every answer token a_i
replaced by a random vocabulary token r_i (the answer prefix a_<i is kept as context). Each item's random tokens are
fixed: drawn from a generator seeded by the item's position in the forget set and ``seed``, so every step, seed and
machine sees the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.data.tokenize import TokenBatch
from bench.methods.base import (
    LossContext,
    Method,
    ObjectiveParams,
    UnlearnBatch,
    answer_mask,
    gather_logprobs,
    next_token_logits,
    row_mean,
)
from bench.registry import METHODS


@dataclass(frozen=True)
class RandomLabelParams(ObjectiveParams):
    """``seed``: the seed of every item's random answer tokens (with its position in the forget set)."""

    seed: int = 0
    search_space = {}


def random_labels(batch: TokenBatch, vocab_size: int, seed: int) -> TokenBatch:
    """``batch`` with each answer label replaced by a token drawn uniformly from [0, vocab_size), the same tokens for
    the same item (generator seeded by ``seed`` and the row's ``index``) at every call."""
    labels = batch.labels.clone()
    for row, item in enumerate(batch.index.tolist()):
        answer = labels[row] != -100
        generator = torch.Generator().manual_seed(seed * 1_000_003 + int(item))
        drawn = torch.randint(vocab_size, (int(answer.sum()),), generator=generator)
        labels[row, answer] = drawn.to(labels.device)
    return TokenBatch(batch.input_ids, batch.attention_mask, labels, batch.index)


@METHODS.register("random_labels")
class RandomLabels(Method):
    """L = E_forget[(1/T) sum_i -log p(r_i | q, a_<i)], r_i random tokens fixed per item."""

    summary = "E (1/T) Σ_i -log p(r_i), r_i a fixed random token per answer position"
    paper = "test plug-in: the naive random-label baseline (issue 19)"
    Params = RandomLabelParams

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logits = next_token_logits(model, batch.forget)
        relabelled = random_labels(batch.forget, logits.shape[-1], self.params.seed)
        logp = gather_logprobs(logits, relabelled)
        return -row_mean(logp, answer_mask(batch.forget)).mean(), {}
