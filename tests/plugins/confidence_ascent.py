"""An out-of-tree method in a test package, loaded the way ``--plugin`` loads one: the contract test runs it like
every built-in method."""

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, ObjectiveParams, UnlearnBatch, check_positive, token_logprobs
from bench.registry import METHODS


@dataclass(frozen=True)
class ConfidenceAscentParams(ObjectiveParams):
    temperature: float = 1.0
    search_space = {"temperature": [0.5, 1.0, 2.0]}

    def check(self) -> None:
        check_positive(temperature=self.temperature)


@METHODS.register("confidence_ascent")
class ConfidenceAscent(Method):
    """L = mean_rows (1/T) sum_i softmax_i(log p / tau) * T * log p_i: ascent focused on the most confident tokens
    of each answer (weights detached)."""

    paper = "test plug-in"
    Params = ConfidenceAscentParams

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logp, mask = token_logprobs(model, batch.forget)
        scores = (logp.detach() / self.params.temperature).masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        return (weights * logp * mask).sum(-1).mean(), {}
