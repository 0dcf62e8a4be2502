"""GA: gradient ascent on the forget answers (Jang et al. 2023; the baseline of TOFU), and the token-weighted
ascent family built on it (WGA, TNPO, WTNPO, SatImp) with the likelihood-capping control of arXiv 2406.09179."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.methods.base import (
    LossContext,
    Method,
    ObjectiveParams,
    UnlearnBatch,
    check_fraction,
    check_positive,
    row_mean,
    token_logprobs,
)
from bench.registry import METHODS
from bench.specs.papers import Paper

TEMPERATURES = [1.0, 2.0, 4.0]  # search values of every ``temperature`` (temperature scaling, arXiv 2406.09179)


@dataclass(frozen=True)
class AscentParams(ObjectiveParams):
    """``cap`` = q: likelihood capping, ascend only on the fraction q of the batch's forget answer tokens with the
    lowest loss (q = 1: every token, plain ascent); ``temperature`` = T: temperature scaling, the objective on the
    trained model's tempered log-probs log softmax(z / T) (T = 1: plain). Both are controls of arXiv 2406.09179."""

    cap: float = 1.0
    temperature: float = 1.0
    search_space = {"cap": [0.25, 0.5, 0.75, 1.0], "temperature": TEMPERATURES}
    late_fields = frozenset({"temperature"})

    def check(self) -> None:
        check_fraction(cap=self.cap)
        check_positive(temperature=self.temperature)


def capping_mask(logp: torch.Tensor, mask: torch.Tensor, q: float) -> torch.Tensor:
    """Keep the ceil(q * N) answer tokens of the batch (N in all) with the lowest NLL = -log p_i (the tokens the
    model still predicts best); the selection is detached. q = 1 returns ``mask``."""
    if q >= 1.0:
        return mask
    nll = (-logp.detach()).masked_fill(mask == 0, float("inf"))
    n_keep = max(1, math.ceil(q * int(mask.sum().item())))
    threshold = nll.flatten().kthvalue(n_keep).values
    return mask * (nll <= threshold).to(mask.dtype)


def weighted_ascent(logp: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None,
                    cap: float = 1.0) -> torch.Tensor:
    """L = mean_rows (1/T_b) sum_i c_i w_i log p_i over the T_b answer tokens of row b, with w_i detached
    (w = 1 when ``weights`` is None) and c_i the capping mask. Minimising L lowers the weighted log-likelihood;
    grad L = mean_rows (1/T_b) sum_i c_i w_i grad log p_i."""
    kept = capping_mask(logp, mask, cap)
    weighted = logp if weights is None else weights.detach() * logp
    return ((weighted * kept).sum(-1) / mask.sum(-1).clamp_min(1)).mean()


def weight_stats(weights: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Mean, min and max of the token weights over answer positions (for the logs and G-effect diagnostics)."""
    values = weights.detach()[mask > 0]
    return {"weight_mean": values.mean().item(), "weight_min": values.min().item(),
            "weight_max": values.max().item()}


@METHODS.register("ga")
class GradientAscent(Method):
    """L = -E_forget[NLL(a)] = E_forget[(1/T) sum_i log p_i]: minimising it raises the forget NLL. With
    ``cap = q < 1`` only the q fraction of lowest-NLL answer tokens contribute (likelihood capping); with
    ``temperature`` tau != 1, p_i = softmax(z_i / tau)[a_i] (temperature scaling)."""

    summary = "E (1/T) Σ_i c_i log p_i; c_i = 1, or likelihood capping with `cap: q`"
    paper = "Jang et al. 2023, Knowledge Unlearning for Mitigating Privacy Risks in Language Models (arXiv 2210.01504)"
    bibtex = (
        Paper("jang2023knowledge",
              author="Jang, Joel and Yoon, Dongkeun and Yang, Sohee and Cha, Sungmin and Lee, Moontae and "
                     "Logeswaran, Lajanugen and Seo, Minjoon",
              title="Knowledge Unlearning for Mitigating Privacy Risks in Language Models",
              year=2023, eprint="2210.01504", note="ACL 2023"),
    )
    Params = AscentParams

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logp, mask = token_logprobs(model, batch.forget, self.params.temperature)
        forget_nll = -row_mean(logp.detach(), mask).mean()
        loss = weighted_ascent(logp, mask, None, self.params.cap)
        # grad log p_i = (1/p_i) grad p_i: the G-effect paper's inverse-confidence term, which grows without bound as
        # tokens are forgotten (why GA does not settle); logged as the mean of 1/p_i over answer tokens.
        inverse = (-logp.detach().double()).clamp_max(69.0).exp()[mask > 0].mean()
        return loss, {"forget_nll": forget_nll.item(), "inverse_confidence": inverse.item()}


@dataclass(frozen=True)
class GDParams(AscentParams):
    retain_loss: str = "nll"  # GD is GA + lambda * NLL_retain by definition
    search_space = {"retain_loss": ["nll", "kl"]}

    def check(self) -> None:
        super().check()
        if self.retain_loss == "none":
            raise ValueError("retain_loss: gd needs a retain term (nll or kl); use ga for plain ascent")


@METHODS.register("gd")
class GradientDifference(GradientAscent):
    """L = -E_forget[NLL(a)] + lambda * E_retain[NLL(a)] (``retain_loss: kl`` makes it GA+KL)."""

    summary = "GA + λ·NLL(retain)"
    paper = "Liu et al. 2022, Continual Learning and Private Unlearning (arXiv 2203.12817)"
    bibtex = (
        Paper("liu2022continual",
              author="Liu, Bo and Liu, Qiang and Stone, Peter",
              title="Continual Learning and Private Unlearning",
              year=2022, eprint="2203.12817", note="CoLLAs 2022"),
    )
    Params = GDParams
