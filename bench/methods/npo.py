"""NPO: negative preference optimisation (Zhang et al. 2024, arXiv 2404.05868)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.methods.base import LossContext, Method, ObjectiveParams, UnlearnBatch, check_positive, token_logprobs
from bench.methods.ga import TEMPERATURES
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class NPOParams(ObjectiveParams):
    beta: float = 0.1  # inverse temperature; beta -> 0 recovers GA
    temperature: float = 1.0  # logit temperature scaling of log p_theta (arXiv 2406.09179); 1: plain NPO
    search_space = {"beta": [0.05, 0.1, 0.5, 1.0], "temperature": TEMPERATURES}
    late_fields = frozenset({"temperature"})

    def check(self) -> None:
        check_positive(beta=self.beta, temperature=self.temperature)


@METHODS.register("npo")
class NPO(Method):
    """L = (2/beta) E_forget[log(1 + (p_theta(a|q) / p_ref(a|q))^beta)]
         = (2/beta) E[softplus(beta * (log p_theta(a|q) - log p_ref(a|q)))],
    with sequence log-likelihoods (sums over answer tokens) and p_ref the frozen target. Its gradient is GA's
    reweighted by w = 2 p_theta^beta / (p_theta^beta + p_ref^beta), logged as ``npo_weight``. With ``temperature``
    tau != 1, p_theta's token probabilities are softmax(z / tau)[a_i] (p_ref stays the target's at tau = 1)."""

    summary = "(2/β)·E softplus(β·(log p_θ(a|q) − log p_ref(a|q)))"
    paper = "Zhang et al. 2024, Negative Preference Optimization (arXiv 2404.05868)"
    bibtex = (
        Paper("zhang2024negative",
              author="Zhang, Ruiqi and Lin, Licong and Bai, Yu and Mei, Song",
              title="Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning",
              year=2024, eprint="2404.05868", note="COLM 2024"),
    )
    Params = NPOParams
    needs_reference = True

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        if ctx.reference is None:
            raise RuntimeError("npo needs the frozen reference model")
        beta = self.params.beta
        logp, mask = token_logprobs(model, batch.forget, self.params.temperature)
        log_ratio = (logp * mask).sum(-1) - ctx.reference.sequence_logprob(batch.forget, "forget")
        loss = (2.0 / beta) * F.softplus(beta * log_ratio).mean()
        weight = 2 * torch.sigmoid(beta * log_ratio.detach())
        return loss, {"npo_weight": weight.mean().item(), "log_ratio": log_ratio.mean().item()}
