"""UNDIAL: self-distillation with adjusted logits (Dong et al. 2024, arXiv 2402.10052)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import (
    LossContext,
    Method,
    ObjectiveParams,
    UnlearnBatch,
    answer_mask,
    check_positive,
    next_token_logits,
    row_mean,
)
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class UNDIALParams(ObjectiveParams):
    strength: float = 10.0  # gamma: how far the true token's logit is lowered in the teacher
    search_space = {"strength": [3.0, 10.0, 30.0]}

    def check(self) -> None:
        check_positive(strength=self.strength)


def undial_token_loss(logits: torch.Tensor, ref_logits: torch.Tensor, targets: torch.Tensor,
                      strength: float) -> torch.Tensor:
    """Per position: CE(t, p_theta) = -sum_v t(v) log p_theta(v), t = softmax(z_ref - gamma * onehot(y))."""
    adjusted = ref_logits.scatter_add(-1, targets.unsqueeze(-1),
                                      torch.full_like(targets, -strength, dtype=ref_logits.dtype).unsqueeze(-1))
    teacher = torch.softmax(adjusted, dim=-1)
    return -(teacher * torch.log_softmax(logits, dim=-1)).sum(-1)


@METHODS.register("undial")
class UNDIAL(Method):
    """L = E_forget[(1/T) sum_i CE(t_i, p_theta(.|x_<i))], t_i = softmax(z_ref,i - gamma * onehot(a_i)): distil
    the frozen target's next-token distribution with the true token's logit lowered by gamma."""

    summary = "E (1/T) Σ_i CE(softmax(z_ref,i − γ·onehot(a_i)), p_θ,i)"
    paper = "Dong et al. 2024, UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning (arXiv 2402.10052)"
    bibtex = (
        Paper("dong2024undial",
              author="Dong, Yijiang River and Lin, Hongzhou and Belkin, Mikhail and Huerta, Ramon and "
                     "Vuli{\\'c}, Ivan",
              title="{UNDIAL}: Self-Distillation with Adjusted Logits for Robust Unlearning in Large Language Models",
              year=2024, eprint="2402.10052", note="NAACL 2025"),
    )
    Params = UNDIALParams
    needs_reference = True

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        if ctx.reference is None:
            raise RuntimeError("undial needs the frozen reference model")
        logits = next_token_logits(model, batch.forget)
        targets = batch.forget.labels[:, 1:].clamp_min(0)
        per_token = undial_token_loss(logits, ctx.reference.logits(batch.forget), targets, self.params.strength)
        return row_mean(per_token, answer_mask(batch.forget)).mean(), {}
