"""TNPO: token-wise NPO (Wang et al. 2025, "Rethinking LLM Unlearning Objectives", arXiv 2502.19301)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, check_positive, token_logprobs
from bench.methods.ga import AscentParams, weight_stats, weighted_ascent
from bench.methods.papers import WANG2025_RETHINKING
from bench.registry import METHODS


@dataclass(frozen=True)
class TNPOParams(AscentParams):
    beta: float = 0.5  # inverse temperature of the token-wise ratio
    search_space = {"beta": [0.1, 0.5, 1.0, 2.0]}

    def check(self) -> None:
        super().check()
        check_positive(beta=self.beta)


def tnpo_weights(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """w_i = 2 p_i^beta / (p_i^beta + p_ref,i^beta) = 2 sigmoid(beta (log p_i - log p_ref,i)), detached."""
    return 2 * torch.sigmoid(beta * (logp.detach() - ref_logp))


@METHODS.register("tnpo")
class TNPO(Method):
    """L = E_forget[(1/T) sum_i w_i log p_i], w_i = stopgrad(2 p_i^beta / (p_i^beta + p_ref,i^beta)): NPO's
    reweighting of GA applied per token, against the frozen target's token probabilities p_ref,i."""

    summary = "E (1/T) Σ_i w_i log p_i, w_i = 2p_i^β / (p_i^β + p_ref,i^β)"
    paper = "Wang et al. 2025, Rethinking LLM Unlearning Objectives: A Gradient Perspective (arXiv 2502.19301)"
    bibtex = (WANG2025_RETHINKING,)
    Params = TNPOParams
    needs_reference = True

    def token_weights(self, logp: torch.Tensor, batch: UnlearnBatch, ctx: LossContext) -> torch.Tensor:
        if ctx.reference is None:
            raise RuntimeError(f"{type(self).__name__.lower()} needs the frozen reference model")
        return tnpo_weights(logp, ctx.reference.token_logprobs(batch.forget, "forget"), self.params.beta)

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logp, mask = token_logprobs(model, batch.forget, self.params.temperature)
        weights = self.token_weights(logp, batch, ctx)
        return weighted_ascent(logp, mask, weights, self.params.cap), weight_stats(weights, mask)
