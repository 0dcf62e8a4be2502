"""SimNPO: reference-free, length-normalised NPO with a margin (Fan et al. 2024, arXiv 2410.07163)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.methods.base import LossContext, Method, ObjectiveParams, UnlearnBatch, check_positive, token_logprobs
from bench.methods.ga import TEMPERATURES
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class SimNPOParams(ObjectiveParams):
    beta: float = 2.5  # inverse temperature on the length-normalised log-likelihood
    delta: float = 0.0  # reward margin
    temperature: float = 1.0  # logit temperature scaling of log p_theta (arXiv 2406.09179); 1: plain SimNPO
    search_space = {"beta": [1.0, 2.5, 4.5], "delta": [0.0, 1.0, 2.0], "temperature": TEMPERATURES}
    late_fields = frozenset({"temperature"})

    def check(self) -> None:
        check_positive(beta=self.beta, temperature=self.temperature)


@METHODS.register("simnpo")
class SimNPO(Method):
    """L = -(2/beta) E_forget[log sigmoid(-(beta/|a|) log p_theta(a|q) - delta)]
         = (2/beta) E[softplus((beta/|a|) log p_theta(a|q) + delta)],
    with log p_theta(a|q) the sum over the |a| answer tokens. No reference model: the length-normalised
    likelihood replaces NPO's ratio to p_ref. Its gradient is GA's (per token) reweighted by
    w = 2 sigmoid((beta/|a|) log p + delta), logged as ``simnpo_weight``. With ``temperature`` tau != 1, p_theta's
    token probabilities are softmax(z / tau)[a_i]."""

    summary = "(2/β)·E softplus((β/|a|)·log p_θ(a|q) + δ)"
    paper = "Fan et al. 2024, Simplicity Prevails: Rethinking Negative Preference Optimization (arXiv 2410.07163)"
    bibtex = (
        Paper("fan2024simplicity",
              author="Fan, Chongyu and Liu, Jiancheng and Lin, Licong and Jia, Jinghan and Zhang, Ruiqi and "
                     "Mei, Song and Liu, Sijia",
              title="Simplicity Prevails: Rethinking Negative Preference Optimization for {LLM} Unlearning",
              year=2024, eprint="2410.07163"),
    )
    Params = SimNPOParams

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        beta, delta = self.params.beta, self.params.delta
        logp, mask = token_logprobs(model, batch.forget, self.params.temperature)
        normalised = (logp * mask).sum(-1) / mask.sum(-1).clamp_min(1)
        margin = beta * normalised + delta
        loss = (2.0 / beta) * F.softplus(margin).mean()
        return loss, {"simnpo_weight": (2 * torch.sigmoid(margin.detach())).mean().item(),
                      "forget_nll": -normalised.mean().item()}
