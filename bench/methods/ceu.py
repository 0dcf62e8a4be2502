"""CE-U: cross-entropy unlearning (Yang 2025, arXiv 2503.01224)."""

from __future__ import annotations

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, answer_mask, next_token_logits, row_mean
from bench.registry import METHODS
from bench.specs.papers import Paper


def ceu_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per position: CE(q, p_theta) = -sum_v q(v) log p_theta(v) with q = stopgrad(softmax(z with z_y = -inf)),
    the model's own distribution with the true token y removed. Its logit gradient is p_theta - q."""
    masked = logits.detach().scatter(-1, targets.unsqueeze(-1), float("-inf"))
    q = torch.softmax(masked, dim=-1)
    return -(q * torch.log_softmax(logits, dim=-1)).sum(-1)


@METHODS.register("ceu")
class CEU(Method):
    """L = E_forget[(1/T) sum_i CE(q_i, p_theta(.|x_<i))], q_i = stopgrad(softmax(z_i with z_i[a_i] = -inf)):
    cross-entropy towards the model's own prediction without the true answer token. Bounded, reference-free."""

    summary = "E (1/T) Σ_i CE(softmax(z_i with z_i[a_i] = −∞), p_θ,i), target detached"
    paper = "Yang 2025, CE-U: Cross Entropy Unlearning (arXiv 2503.01224)"
    bibtex = (
        Paper("yang2025ceu",
              author="Yang, Bo",
              title="{CE-U}: Cross Entropy Unlearning",
              year=2025, eprint="2503.01224"),
    )

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logits = next_token_logits(model, batch.forget)
        mask = answer_mask(batch.forget)
        per_token = ceu_token_loss(logits, batch.forget.labels[:, 1:].clamp_min(0))
        return row_mean(per_token, mask).mean(), {}
