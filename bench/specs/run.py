"""What one run is: its optimisation budget, its control protocol, an optional LoRA adapter, and the ``RunSpec``
whose content hash is the run id."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bench.specs.mapping import canonical_json, content_hash


@dataclass(frozen=True)
class Budget:
    """The optimisation budget every method gets on a board: optimizer steps of AdamW with linear warm-up.

    Effective batch = ``batch_size * grad_accum`` forget items (and as many retain items) per optimizer step.
    """

    steps: int = 20  # optimizer steps
    lr: float = 1e-4  # AdamW's peak learning rate
    batch_size: int = 8  # forget items per micro-batch (and as many retain items)
    grad_accum: int = 1  # micro-batches per optimizer step
    warmup_steps: int = 0  # steps of linear warm-up from 0 to lr
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    max_grad_norm: float = 0.0  # 0 disables clipping
    callback_every: int = 0  # 0: no callbacks
    tier: str = ""  # the named tier this budget is (bench/specs/tiers.yaml); "" for a custom budget
    schedule: str = "constant"  # learning rate after warm-up: constant | linear (decay to 0) | cosine (to 0)
    forward_passes_per_step: int = 4  # most forward passes of the trained model per micro-batch

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        for name in ("warmup_steps", "callback_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"schedule: must be constant, linear or cosine, got {self.schedule!r}")
        if self.forward_passes_per_step < 1:
            raise ValueError(f"forward_passes_per_step: must be >= 1, got {self.forward_passes_per_step}")

    @property
    def forward_pass_limit(self) -> int:
        """Forward passes of the trained model the whole run may use (all steps, prepare and finalize included)."""
        return self.steps * self.grad_accum * self.forward_passes_per_step


CONTROL_KINDS = ("none", "mixing", "early_stop")
UTILITY_MEASURES = ("retain_es", "retain_rouge", "model_utility")


@dataclass(frozen=True)
class ControlSpec:
    """How a run is controlled before comparison (arXiv 2406.09179).

    ``mixing``: after training, calibrate theta(alpha) = (1 - alpha) theta_target + alpha theta_unlearned to the
    largest alpha with U >= tau * U(target) (bisection to ``tolerance``). ``early_stop``: at every callback step
    (``budget.callback_every``) measure U and stop when it falls below tau * U(target), keeping the last model that
    passed. ``none``: raw endpoints only. With any kind, a positive ``budget.callback_every`` records U and forget
    ES at those step-budget checkpoints.
    """

    kind: str = "mixing"  # mixing | early_stop | none
    tau: float = 0.9  # the utility kept: U >= tau * U(target), in (0, 1]
    utility: str = "retain_es"  # the utility U: retain_es | retain_rouge | model_utility
    tolerance: float = 0.01  # the width of alpha's bisection interval, in (0, 1)

    def __post_init__(self) -> None:
        if self.kind not in CONTROL_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(CONTROL_KINDS)}, got {self.kind!r}")
        if self.utility not in UTILITY_MEASURES:
            raise ValueError(f"utility: must be one of {', '.join(UTILITY_MEASURES)}, got {self.utility!r}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau: must be in (0, 1], got {self.tau}")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance: must be in (0, 1), got {self.tolerance}")


@dataclass(frozen=True)
class RunSpec:
    """One unlearning run: a pure function of these fields gives the run record.

    ``task`` is ``name@version``; ``hparams`` are the method's hyper-parameters with defaults filled in, so the
    run id changes whenever any number that can change a result changes; ``method_version`` is the method
    class's ``version`` and ``model`` carries the evaluation's versions (``eval_version``, ``metric_versions``),
    so it changes whenever code that can change a result is bumped too (``bench.run.runspec``).
    """

    task: str
    split: str
    method: str
    hparams: dict[str, Any]
    model: dict[str, Any]
    budget: Budget
    seed: int = 0
    control: ControlSpec = field(default_factory=ControlSpec)
    requests: int = 1  # sequential forget requests the forget split is applied as (1 = all at once)
    adapter: AdapterSpec | None = None  # None: full fine-tuning
    method_version: str = "1"  # the method class's ``version`` (``make_run_spec`` pins it)

    def to_dict(self) -> dict[str, Any]:
        """The canonical fields; ``adapter`` only when set, so full fine-tuning runs keep their ids."""
        out = json.loads(canonical_json(self))
        if out.get("adapter") is None:
            out.pop("adapter", None)
        return out

    @property
    def run_id(self) -> str:
        return content_hash(self.to_dict())

    @property
    def label(self) -> str:
        sequential = f"x{self.requests}" if self.requests > 1 else ""
        return f"{self.task}/{self.split}{sequential}/{self.method}/seed{self.seed}"


@dataclass(frozen=True)
class AdapterSpec:
    """Train a LoRA adapter (Hu et al. 2022, via ``peft``) instead of the full weights: W + (alpha / r) B A on the
    ``target_modules`` of every layer, with B initialised to 0 (the run starts at the target). The adapter is
    merged into the weights after training, so evaluation, calibration by mixing and the stored model are those of
    a plain model; the G-effect is measured on the adapter's parameters (the ones trained)."""

    kind: str = "lora"  # only lora
    r: int = 8  # the rank of B A
    alpha: int = 16  # the scale's numerator: the update is (alpha / r) B A
    dropout: float = 0.0  # dropout on the adapter's input, in [0, 1)
    # the modules of every layer that get an adapter (names of the model's linear layers)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self) -> None:
        if self.kind != "lora":
            raise ValueError(f"kind: only 'lora' adapters are supported, got {self.kind!r}")
        if self.r < 1 or self.alpha < 1:
            raise ValueError(f"r and alpha: must be >= 1, got r={self.r}, alpha={self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("target_modules: name at least one module")
