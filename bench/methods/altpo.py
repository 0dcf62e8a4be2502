"""AltPO: alternate preference optimisation (Mekala et al. 2024, COLING 2025, arXiv 2409.13474; the open-unlearning
community method ``AltPO``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, ObjectiveParams, UnlearnBatch, check_positive
from bench.methods.idkdpo import preference_loss
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class AltPOParams(ObjectiveParams):
    beta: float = 0.1
    retain_loss: str = "nll"  # the authors' runs (and open-unlearning's) add the retain NLL
    search_space = {"beta": [0.05, 0.1, 0.5]}  # with retain_weight, the community method's grid (its alpha)

    def check(self) -> None:
        check_positive(beta=self.beta)


@METHODS.register("altpo")
class AltPO(Method):
    """L = -(2/beta) E_forget[log sigmoid(beta * ((log p_theta(a'|q) - log p_ref(a'|q))
                                                 - (log p_theta(a|q) - log p_ref(a|q))))] + lambda E_retain[NLL(a)]
    with a' a plausible alternate answer preferred over the true answer a (in-domain positive feedback beside the
    negative), sequence log-likelihoods (sums over answer tokens) and p_ref the frozen target. The objective of the
    authors' code (``forget_loss=subdpo``) and of open-unlearning's AltPO (DPO on alternates, + the retain NLL);
    neither adds another NLL term. The alternates come from the task's own facts (``bench.data.alternates``: a retain
    person's value of the same attribute), not from the target's generations as in the paper, one per item."""

    summary = "−(2/β)·E log σ(β·[(log p_θ − log p_ref)(a′) − (log p_θ − log p_ref)(a)]), a′ an alternate answer; " \
              "plus λ·NLL(retain)"
    paper = ("Mekala et al. 2024, Alternate Preference Optimization for Unlearning Factual Knowledge in Large Language "
             "Models (arXiv 2409.13474)")
    bibtex = (
        Paper("mekala2024alternate",
              author="Mekala, Anmol and Dorna, Vineeth and Dubey, Shreya and Lalwani, Abhishek and Koleczek, David "
                     "and Rungta, Mukund and Hasan, Sadid and Lobo, Elita",
              title="Alternate Preference Optimization for Unlearning Factual Knowledge in Large Language Models",
              year=2024, eprint="2409.13474", note="COLING 2025"),
    )
    Params = AltPOParams
    needs_reference = True
    needs_alternate = True

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        if ctx.reference is None or batch.alternate is None:
            raise RuntimeError("altpo needs the frozen reference model and the alternate answers")
        return preference_loss(model, ctx.reference, (batch.alternate, "alternate"), batch.forget, self.params.beta)
