"""RMU: representation misdirection for unlearning (Li et al. 2024, the WMDP paper, arXiv 2403.03218)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from bench.methods.base import (
    LossContext,
    Method,
    ObjectiveParams,
    UnlearnBatch,
    answer_mask,
    check_positive,
    hidden_state,
)
from bench.registry import METHODS
from bench.specs.papers import Paper


@dataclass(frozen=True)
class RMUParams(ObjectiveParams):
    layer: int = 1  # l: decoder layer (0-based) whose output activations are steered
    # c: length of the control vector. The WMDP paper tunes it per model (6.5 for Zephyr-7B); 40 is about 3x the
    # mean activation norm at layer 1 of the embedded task's tiny model (13).
    steering_coef: float = 40.0
    alpha: float = 10.0  # weight of the retain activation-matching term
    trainable: str = r"layers\.[01]\."  # regex over parameter names: only these train (layers <= l)
    direction_seed: int = 0  # seed of the fixed random direction u
    search_space = {"steering_coef": [5.0, 10.0, 20.0, 40.0], "alpha": [1.0, 10.0, 100.0], "retain_loss": ["none"]}

    def check(self) -> None:
        check_positive(steering_coef=self.steering_coef, alpha=self.alpha)
        if self.layer < 0:
            raise ValueError(f"layer: must be >= 0, got {self.layer}")
        if self.retain_loss != "none":
            raise ValueError("retain_loss: rmu has its own retain term (alpha); leave retain_loss at none")
        try:
            re.compile(self.trainable)
        except re.error as exc:
            raise ValueError(f"trainable: invalid regular expression: {exc}") from exc


def control_vector(hidden_size: int, coef: float, seed: int) -> torch.Tensor:
    """c * u with u ~ Uniform[0, 1)^d normalised to unit length (fixed by ``seed``)."""
    u = torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed))
    return coef * u / u.norm()


def masked_mse(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1 / (d * sum m)) sum_t m_t ||h_t - target_t||^2: mean squared error over the masked positions."""
    sq = ((h - target) ** 2).mean(-1)
    return (sq * mask).sum() / mask.sum().clamp_min(1)


@METHODS.register("rmu")
class RMU(Method):
    """L = MSE(h_l(x_f), c u) over forget positions + alpha * MSE(h_l(x_r), h_l^ref(x_r)) over retain tokens,
    h_l the output of decoder layer l, u a fixed random unit vector, h^ref the frozen target's activations; only
    parameters whose name matches ``trainable`` are updated. Forget positions are those that predict an answer
    token (the prompt's last token and the answer), so the steering hits where the knowledge is read out."""

    summary = ("mean ‖h_l(x_f) − c·u‖²/d + α·mean ‖h_l(x_r) − h_l^ref(x_r)‖²/d; trains only parameters matching "
               "`trainable`")
    paper = ("Li et al. 2024, The WMDP Benchmark: Measuring and Reducing Malicious Use with Unlearning "
             "(arXiv 2403.03218)")
    bibtex = (
        Paper("li2024wmdp",
              author="Li, Nathaniel and Pan, Alexander and Gopal, Anjali and Yue, Summer and Berrios, Daniel and "
                     "Gatti, Alice and others",
              title="The {WMDP} Benchmark: Measuring and Reducing Malicious Use with Unlearning",
              year=2024, eprint="2403.03218", note="ICML 2024"),
    )
    Params = RMUParams
    needs_reference = True
    needs_retain = True

    def prepare(self, model: torch.nn.Module, ctx: LossContext) -> None:
        n_layers = model.config.num_hidden_layers
        if self.params.layer >= n_layers:
            raise ValueError(f"rmu: layer {self.params.layer} out of range: the model has {n_layers} layers")
        pattern = re.compile(self.params.trainable)
        chosen = 0
        for name, param in model.named_parameters():
            param.requires_grad_(bool(pattern.search(name)))
            chosen += int(param.requires_grad)
        if not chosen:
            raise ValueError(f"rmu: trainable pattern {self.params.trainable!r} matches no parameter")

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        if ctx.reference is None or batch.retain is None:
            raise RuntimeError("rmu needs the frozen reference model and a retain batch")
        layer = self.params.layer
        h_forget = hidden_state(model, batch.forget, layer)[:, :-1].float()
        target = control_vector(h_forget.shape[-1], self.params.steering_coef,
                                self.params.direction_seed).to(h_forget.device)
        forget_term = masked_mse(h_forget, target.expand_as(h_forget), answer_mask(batch.forget))
        h_retain = hidden_state(model, batch.retain, layer).float()
        h_ref = ctx.reference.hidden_state(batch.retain, layer).float()
        retain_term = masked_mse(h_retain, h_ref, batch.retain.attention_mask.float())
        loss = forget_term + self.params.alpha * retain_term
        return loss, {"forget_mse": forget_term.item(), "retain_mse": retain_term.item(),
                      "forget_norm": h_forget.detach().norm(dim=-1).mean().item()}
