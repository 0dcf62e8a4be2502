"""WTNPO: TNPO's token weights times WGA's (Wang et al. 2025, arXiv 2502.19301)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, UnlearnBatch, check_positive
from bench.methods.tnpo import TNPO, TNPOParams, tnpo_weights
from bench.registry import METHODS


@dataclass(frozen=True)
class WTNPOParams(TNPOParams):
    alpha: float = 1.0  # confidence exponent (WGA's)
    search_space = {"alpha": [0.5, 1.0, 2.0]}

    def check(self) -> None:
        super().check()
        check_positive(alpha=self.alpha)


@METHODS.register("wtnpo")
class WTNPO(TNPO):
    """L = E_forget[(1/T) sum_i w_i log p_i], w_i = stopgrad(2 p_i^beta / (p_i^beta + p_ref,i^beta) * p_i^alpha)."""

    summary = "E (1/T) Σ_i w_i log p_i, w_i = TNPO weight · p_i^α"
    Params = WTNPOParams

    def token_weights(self, logp: torch.Tensor, batch: UnlearnBatch, ctx: LossContext) -> torch.Tensor:
        if ctx.reference is None:
            raise RuntimeError("wtnpo needs the frozen reference model")
        ref = ctx.reference.token_logprobs(batch.forget, "forget")
        return tnpo_weights(logp, ref, self.params.beta) * (self.params.alpha * logp.detach()).exp()
