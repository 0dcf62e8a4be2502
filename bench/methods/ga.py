"""GA: gradient ascent on the forget answers (Jang et al. 2023; the baseline of TOFU)."""

from __future__ import annotations

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, sequence_nll
from bench.registry import METHODS


@METHODS.register("ga")
class GradientAscent(Method):
    """L = -E_forget[NLL(a)] = E_forget[(1/T) sum_i log p_i]: minimising it raises the forget NLL."""

    paper = "Jang et al. 2023, Knowledge Unlearning for Mitigating Privacy Risks in Language Models (arXiv 2210.01504)"

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch, ctx: LossContext) -> tuple[torch.Tensor, dict]:
        forget_nll = sequence_nll(model, batch.forget)
        return -forget_nll.mean(), {"forget_nll": forget_nll.mean().item()}
