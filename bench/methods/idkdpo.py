"""IdkDPO: DPO with "I don't know" preferred over the true forget answer (Rafailov et al. 2023 on TOFU's setup)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.data.tokenize import TokenBatch
from bench.methods.base import (
    LossContext,
    Method,
    ObjectiveParams,
    ReferenceModel,
    UnlearnBatch,
    check_positive,
    token_logprobs,
)
from bench.methods.papers import MAINI2024_TOFU
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class IdkDPOParams(ObjectiveParams):
    beta: float = 0.1
    retain_loss: str = "nll"
    search_space = {"beta": [0.05, 0.1, 0.5, 1.0]}

    def check(self) -> None:
        check_positive(beta=self.beta)


@METHODS.register("idkdpo")
class IdkDPO(Method):
    """L = -(2/beta) E_forget[log sigmoid(beta * ((log p_theta(idk|q) - log p_ref(idk|q))
                                                 - (log p_theta(a|q) - log p_ref(a|q))))]
    with sequence log-likelihoods (sums over answer tokens), p_ref the frozen target, the IDK answer preferred and
    the true answer rejected. The 2/beta scale matches NPO's (NPO is this loss without the preferred term)."""

    summary = "−(2/β)·E log σ(β·[(log p_θ − log p_ref)(idk) − (log p_θ − log p_ref)(a)]), plus λ·NLL(retain)"
    paper = "Rafailov et al. 2023, Direct Preference Optimization (arXiv 2305.18290); IDK targets from TOFU"
    bibtex = (
        Paper("rafailov2023direct",
              author="Rafailov, Rafael and Sharma, Archit and Mitchell, Eric and Ermon, Stefano and "
                     "Manning, Christopher D. and Finn, Chelsea",
              title="Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
              year=2023, eprint="2305.18290", note="NeurIPS 2023"),
        MAINI2024_TOFU,
    )
    Params = IdkDPOParams
    needs_reference = True
    needs_idk = True

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        if ctx.reference is None or batch.idk is None:
            raise RuntimeError("idkdpo needs the frozen reference model and the IDK answers")
        return preference_loss(model, ctx.reference, (batch.idk, "idk"), batch.forget, self.params.beta)


def preference_loss(model: torch.nn.Module, reference: ReferenceModel, chosen: tuple[TokenBatch, str],
                    rejected: TokenBatch, beta: float) -> tuple[torch.Tensor, dict]:
    """DPO with the forget answers rejected: -(2/beta) mean log sigmoid(beta * (r(chosen) - r(rejected))),
    r = log p_theta - log p_ref of the whole answer (sums over its tokens); ``chosen`` is the preferred answers'
    batch and the reference cache's key for them (same rows as ``rejected``)."""
    batch, key = chosen
    logp_w, mask_w = token_logprobs(model, batch)
    logp_l, mask_l = token_logprobs(model, rejected)
    chosen_ratio = (logp_w * mask_w).sum(-1) - reference.sequence_logprob(batch, key)
    rejected_ratio = (logp_l * mask_l).sum(-1) - reference.sequence_logprob(rejected, "forget")
    margin = beta * (chosen_ratio - rejected_ratio)
    loss = -(2.0 / beta) * F.logsigmoid(margin).mean()
    return loss, {"chosen_log_ratio": chosen_ratio.mean().item(), "rejected_log_ratio": rejected_ratio.mean().item(),
                  "preference_accuracy": (margin > 0).float().mean().item()}
