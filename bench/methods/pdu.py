"""PDU: primal-dual unlearning (Entesari et al. 2025, "Constrained Entropic Unlearning", arXiv 2506.05314; the
open-unlearning community method ``PDU``)."""

from __future__ import annotations

from collections.abc import Sequence
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
    sequence_nll,
)
from bench.registry import METHODS
from bench.runtime.distributed import average_scalar
from bench.specs.papers import Paper


@dataclass(frozen=True)
class PDUParams(ObjectiveParams):
    """``epsilon``: the bound on the retain NLL (choose it a little above the target's own retain NLL, as the
    authors advise; the tiny targets' is about 0.01); ``dual_init``: lambda_0; ``dual_step``: the dual ascent step
    eta; ``dual_warmup``: optimizer steps before the first dual update (lambda stays lambda_0 until then)."""

    epsilon: float = 0.05
    dual_init: float = 1.0
    dual_step: float = 1.0
    dual_warmup: int = 0
    search_space = {"epsilon": [0.02, 0.05, 0.1, 0.3], "dual_init": [1.0, 10.0, 100.0], "dual_step": [0.1, 1.0, 5.0]}

    def check(self) -> None:
        check_positive(epsilon=self.epsilon, dual_step=self.dual_step)
        if not self.dual_init >= 0:
            raise ValueError(f"dual_init: must be >= 0, got {self.dual_init}")
        if self.dual_warmup < 0:
            raise ValueError(f"dual_warmup: must be >= 0, got {self.dual_warmup}")


def logit_margin_flattening(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean_rows (1/T) sum_i (max_v z_i(v) - (1/V) sum_v z_i(v))^2 over the answer positions i: zero exactly when
    the next-token distribution is uniform (PDU's forget loss)."""
    margin = logits.max(dim=-1).values - logits.mean(dim=-1)
    return row_mean(margin**2, mask).mean()


@METHODS.register("pdu")
class PDU(Method):
    """L = L_f + lambda * (E_retain[NLL(a)] - epsilon), the Lagrangian of min L_f s.t. E_retain[NLL(a)] <= epsilon,
    with L_f = E_forget[(1/T) sum_i (max_v z_i(v) - mean_v z_i(v))^2] the logit-margin flattening loss (uniform
    next-token distributions on the forget answers) and the dual variable lambda >= 0 updated after every optimizer
    step by dual ascent, lambda <- max(0, lambda + eta * (NLL_retain - epsilon)), NLL_retain the step's mean over its
    micro-batches (``end_step``: the G-effect recorder and other calls of ``loss`` outside training leave it be).
    lambda starts at ``dual_init`` on every run (``prepare``). The positions are those predicting an answer token
    (open-unlearning's ``pdu.py`` masks the logits one position later)."""

    summary = "E (1/T) Σ_i (max z_i − mean z_i)² + λ·(NLL(retain) − ε), λ ← max(0, λ + η·(NLL(retain) − ε)) per step"
    paper = ("Entesari et al. 2025, Constrained Entropic Unlearning: A Primal-Dual Framework for Large Language "
             "Models (arXiv 2506.05314)")
    bibtex = (
        Paper("entesari2025constrained",
              author="Entesari, Taha and Hatami, Arman and Khaziev, Rinat and Ramakrishna, Anil and "
                     "Fazlyab, Mahyar",
              title="Constrained Entropic Unlearning: A Primal-Dual Framework for Large Language Models",
              year=2025, eprint="2506.05314"),
    )
    Params = PDUParams
    needs_retain = True

    def __init__(self, params: PDUParams | None = None) -> None:
        super().__init__(params)
        self.dual = self.params.dual_init

    def prepare(self, model: torch.nn.Module, ctx: LossContext) -> None:
        self.dual = self.params.dual_init

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        flattening = logit_margin_flattening(next_token_logits(model, batch.forget), answer_mask(batch.forget))
        return flattening, {"flattening": flattening.item()}

    def retain_term(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor | None, dict]:
        """lambda * (E_retain[NLL(a)] - epsilon), plus the optional regulariser of every method."""
        if batch.retain is None:
            raise RuntimeError("pdu needs a retain batch")
        retain_nll = sequence_nll(model, batch.retain).mean()
        term = self.dual * (retain_nll - self.params.epsilon)
        extra, diagnostics = super().retain_term(model, batch, ctx)
        return (term if extra is None else term + extra), {**diagnostics, "retain_nll": retain_nll.item(),
                                                           "dual": self.dual}

    def end_step(self, ctx: LossContext, diagnostics: Sequence[dict]) -> None:
        """lambda <- max(0, lambda + eta * (mean retain NLL of the step - epsilon)) once ``dual_warmup`` steps are
        done (the mean over micro-batches and data-parallel processes, so every process keeps the same lambda)."""
        if ctx.step < self.params.dual_warmup:
            return
        retain_nll = average_scalar(sum(d["retain_nll"] for d in diagnostics) / len(diagnostics))
        self.dual = max(0.0, self.dual + self.params.dual_step * (retain_nll - self.params.epsilon))
