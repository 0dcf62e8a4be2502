"""SatImp: saturation x importance token reweighting (Yang et al. 2025, ICML, arXiv 2505.11953)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, check_positive, token_logprobs
from bench.methods.ga import AscentParams, weight_stats, weighted_ascent
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class SatImpParams(AscentParams):
    beta1: float = 5.0  # importance exponent on p_i
    beta2: float = 1.0  # saturation exponent on (1 - p_i)
    search_space = {"beta1": [1.0, 3.0, 5.0], "beta2": [0.5, 1.0, 2.0]}

    def check(self) -> None:
        super().check()
        check_positive(beta1=self.beta1, beta2=self.beta2)


@METHODS.register("satimp")
class SatImp(Method):
    """L = E_forget[(1/T) sum_i w_i log p_i], w_i = stopgrad(p_i^beta1 (1 - p_i)^beta2): high-likelihood
    (important) tokens count more, and tokens near p = 1 (saturated) are damped."""

    summary = "E (1/T) Σ_i w_i log p_i, w_i = p_i^β1·(1 − p_i)^β2"
    paper = "Yang et al. 2025, Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning (arXiv 2505.11953)"
    bibtex = (
        Paper("yang2025exploring",
              author="Yang, Puning and Wang, Qizhou and Huang, Zhuo and Liu, Tongliang and Zhang, Chengqi and "
                     "Han, Bo",
              title="Exploring Criteria of Loss Reweighting to Enhance {LLM} Unlearning",
              year=2025, eprint="2505.11953", note="ICML 2025"),
    )
    Params = SatImpParams

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logp, mask = token_logprobs(model, batch.forget, self.params.temperature)
        p = logp.detach().exp()
        weights = p.pow(self.params.beta1) * (1 - p).clamp_min(0).pow(self.params.beta2)
        return weighted_ascent(logp, mask, weights, self.params.cap), weight_stats(weights, mask)
