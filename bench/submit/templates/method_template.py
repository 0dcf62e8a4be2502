"""template_method: an unlearning objective for unlearning-bench (confidence-weighted gradient ascent).

Written by ``ubench new-method template_method``. Replace ``forget_loss`` with your objective and keep the class
docstring's formula in step with it, fill in ``paper``, then check and submit the method with
``ubench submit template_method.entry.yaml``. The harness owns the loop, optimizer, budget and evaluation: a method
only turns a batch into a scalar to minimise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.base import LossContext, Method, ObjectiveParams, UnlearnBatch, row_mean, token_logprobs
from bench.registry import METHODS  # noqa: F401 (used by the decorator that `ubench new-method` writes)


@dataclass(frozen=True)
class TemplateMethodParams(ObjectiveParams):
    """Hyper-parameters of template_method; every field has a documented default.

    ``alpha`` (default 1.0): exponent of the confidence weight; 0 gives plain gradient ascent, a larger value
    concentrates the ascent on the answers the model still knows. Inherited from ``ObjectiveParams``:
    ``retain_loss`` (none | nll | kl) and ``retain_weight`` add a retain-set regulariser.

    ``search_space`` lists the values a tuner may try. A submitted entry may set a listed field anywhere within
    the listed range; every field not listed stays at its default (it is part of the method's version).
    """

    alpha: float = 1.0
    search_space = {"alpha": [0.5, 1.0, 2.0, 4.0]}

    def check(self) -> None:
        """Raise ``ValueError("field: problem")`` for an invalid value."""
        if not self.alpha >= 0:
            raise ValueError(f"alpha: must be >= 0, got {self.alpha}")


# `ubench new-method` turns the next line into the registration decorator (the template itself registers nothing).
# @METHODS.register("template_method")
class TemplateMethod(Method):
    """L = -E_forget[w(a) * NLL(a)], NLL(a) = -(1/T) sum_i log p(a_i | q, a_<i), w(a) = stopgrad(exp(-alpha * NLL(a))).

    Gradient ascent on the forget answers, each weighted by the model's current confidence in it (its geometric
    mean token probability, raised to ``alpha``): answers that are already forgotten (NLL large, w -> 0) stop
    pulling the model, which keeps the ascent from running away.
    """

    # bump when the objective or a default changes: the version is part of every run id of the method, so records
    # of another version are not reused
    version = "1"
    paper = "Your Name et al. 2025, Title of the paper (arXiv XXXX.XXXXX)"
    # the paper's BibTeX for `ubench cite`: (bench.specs.papers.Paper("key", author=..., title=..., year=...,
    # eprint="XXXX.XXXXX"),)
    bibtex = ()
    Params = TemplateMethodParams

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        logp, mask = token_logprobs(model, batch.forget)  # [B, L-1] log p_i and answer-token mask
        nll = -row_mean(logp, mask)  # [B] per-answer NLL
        weights = torch.exp(-self.params.alpha * nll.detach())
        loss = -(weights * nll).mean()
        return loss, {"forget_nll": nll.mean().item(), "weight_mean": weights.mean().item()}
