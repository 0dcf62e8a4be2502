"""WGA: weighted gradient ascent (Wang et al. 2025, "Rethinking LLM Unlearning Objectives", arXiv 2502.19301)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, check_positive, token_logprobs
from bench.methods.ga import AscentParams, weight_stats, weighted_ascent
from bench.methods.papers import WANG2025_RETHINKING
from bench.registry import METHODS


@dataclass(frozen=True)
class WGAParams(AscentParams):
    alpha: float = 1.0  # token weight exponent
    search_space = {"alpha": [0.5, 1.0, 2.0, 5.0]}

    def check(self) -> None:
        super().check()
        check_positive(alpha=self.alpha)


@METHODS.register("wga")
class WGA(Method):
    """L = E_forget[(1/T) sum_i w_i log p_i] with w_i = stopgrad(p_i^alpha): GA whose tokens count by the
    model's current confidence, so tokens already forgotten (p_i -> 0) stop pulling the model."""

    summary = "E (1/T) Σ_i w_i log p_i, w_i = p_i^α"
    paper = "Wang et al. 2025, Rethinking LLM Unlearning Objectives: A Gradient Perspective (arXiv 2502.19301)"
    bibtex = (WANG2025_RETHINKING,)
    Params = WGAParams

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logp, mask = token_logprobs(model, batch.forget, self.params.temperature)
        weights = (self.params.alpha * logp.detach()).exp()
        return weighted_ascent(logp, mask, weights, self.params.cap), weight_stats(weights, mask)
