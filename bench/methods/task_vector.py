"""Task-vector negation (Ilharco et al. 2023, "Editing Models with Task Arithmetic", arXiv 2212.04089)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, ObjectiveParams, UnlearnBatch, check_positive, sequence_nll
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class TaskVectorParams(ObjectiveParams):
    scale: float = 1.0  # lambda: how much of the forget task vector is subtracted
    search_space = {"scale": [0.5, 1.0, 2.0, 4.0], "retain_loss": ["none"]}

    def check(self) -> None:
        check_positive(scale=self.scale)
        if self.retain_loss != "none":
            raise ValueError("retain_loss: task_vector fine-tunes on the forget set only; leave it at none")


@METHODS.register("task_vector")
class TaskVector(Method):
    """Fine-tune on the forget set (L = E_forget[NLL(a)], descent) for the budget, giving theta_ft; then return
    theta_unl = theta_0 - lambda (theta_ft - theta_0), i.e. subtract the forget task vector from the target."""

    summary = "fine-tune on forget (descent), then θ₀ − λ·(θ_ft − θ₀)"
    paper = "Ilharco et al. 2023, Editing Models with Task Arithmetic (arXiv 2212.04089)"
    bibtex = (
        Paper("ilharco2023editing",
              author="Ilharco, Gabriel and Ribeiro, Marco Tulio and Wortsman, Mitchell and Gururangan, Suchin and "
                     "Schmidt, Ludwig and Hajishirzi, Hannaneh and Farhadi, Ali",
              title="Editing Models with Task Arithmetic",
              year=2023, eprint="2212.04089", note="ICLR 2023"),
    )
    Params = TaskVectorParams
    # negating the adapter's factors A and B separately is not negating their product B A
    supports_adapter = False

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self._initial: dict[str, torch.Tensor] = {}

    def prepare(self, model: torch.nn.Module, ctx: LossContext) -> None:
        self._initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        nll = sequence_nll(model, batch.forget).mean()
        return nll, {"forget_nll": nll.item()}

    @torch.no_grad()
    def finalize(self, model: torch.nn.Module, ctx: LossContext) -> None:
        for name, param in model.named_parameters():
            if name in self._initial:
                initial = self._initial[name]
                param.copy_(initial - self.params.scale * (param - initial))
        self._initial = {}
