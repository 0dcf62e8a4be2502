"""A deliberately broken method (its loss is NaN) to test that failures are recorded, not dropped."""

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, sequence_nll
from bench.registry import METHODS


@METHODS.register("nan_loss")
class NaNLoss(Method):
    """L = NaN * NLL: every step's loss is NaN."""

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch, ctx: LossContext) -> tuple[torch.Tensor, dict]:
        return sequence_nll(model, batch.forget).mean() * float("nan"), {}
