"""A method that runs the trained model more often than any tier allows (an inner loop hidden in its loss), to test
that the harness records ``budget_exceeded``."""

import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, sequence_nll
from bench.registry import METHODS


@METHODS.register("over_budget")
class OverBudget(Method):
    """L = -NLL(forget), computed after 9 extra forward passes of the trained model per micro-batch."""

    paper = "test plug-in"

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch, ctx: LossContext) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            for _ in range(9):
                model(input_ids=batch.forget.input_ids, attention_mask=batch.forget.attention_mask)
        return -sequence_nll(model, batch.forget).mean(), {}
