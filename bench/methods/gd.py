"""GD: gradient difference, gradient ascent on forget plus descent on retain (Liu et al. 2022; TOFU baseline)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, check_positive, sequence_nll
from bench.registry import METHODS


@dataclass(frozen=True)
class GDParams:
    retain_weight: float = 1.0  # lambda: weight of the retain NLL
    search_space = {"retain_weight": [0.5, 1.0, 2.0, 5.0]}

    def __post_init__(self) -> None:
        check_positive(retain_weight=self.retain_weight)


@METHODS.register("gd")
class GradientDifference(Method):
    """L = -E_forget[NLL(a)] + lambda * E_retain[NLL(a)]."""

    paper = "Liu et al. 2022, Continual Learning and Private Unlearning (arXiv 2203.12817)"
    Params = GDParams
    needs_retain = True

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch, ctx: LossContext) -> tuple[torch.Tensor, dict]:
        forget_nll = sequence_nll(model, batch.forget).mean()
        retain_nll = sequence_nll(model, batch.retain).mean()
        loss = -forget_nll + self.params.retain_weight * retain_nll
        return loss, {"forget_nll": forget_nll.item(), "retain_nll": retain_nll.item()}
