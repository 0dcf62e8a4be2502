"""IdkPO: teach "I don't know" on forget questions (the TOFU preference-optimisation baseline, Maini et al. 2024)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, ObjectiveParams, UnlearnBatch, sequence_nll
from bench.methods.papers import MAINI2024_TOFU
from bench.registry import METHODS


@dataclass(frozen=True)
class IdkPOParams(ObjectiveParams):
    retain_loss: str = "nll"  # TOFU's baseline descends on the retain set too


@METHODS.register("idkpo")
class IdkPO(Method):
    """L = E_forget[NLL(idk | q)] (+ lambda E_retain[NLL(a)] by default): minimise the NLL of an "I don't know"
    answer to every forget question; the forget answers themselves are never ascended."""

    summary = "E NLL(idk | q), plus λ·NLL(retain) by default"
    paper = "Maini et al. 2024, TOFU: A Task of Fictitious Unlearning for LLMs (arXiv 2401.06121)"
    bibtex = (MAINI2024_TOFU,)
    Params = IdkPOParams
    needs_idk = True

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        if batch.idk is None:
            raise RuntimeError("idkpo needs the forget questions' IDK answers")
        idk_nll = sequence_nll(model, batch.idk).mean()
        return idk_nll, {"idk_nll": idk_nll.item()}
