"""The one unlearning loop: plain PyTorch, AdamW, gradient accumulation, paired forget/retain batches, callbacks.

Every method runs through ``unlearn`` under the same ``Budget``: ``budget.steps`` optimizer steps, each over
``budget.grad_accum`` micro-batches of ``budget.batch_size`` forget items (and as many retain items when the method
asks for them). Batches come from per-set samplers that reshuffle every pass with a generator seeded from the run's
seed, so the same seed gives the same batches, losses and weights on CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from bench.data.sampling import EpochSampler
from bench.data.tokenize import Encoded
from bench.methods.base import Callback, LossContext, Method, ReferenceModel, StepState, UnlearnBatch
from bench.models.adapters import freeze_base, is_adapted
from bench.runtime.device import runtime
from bench.runtime.distributed import average_gradients, average_scalar, shard
from bench.specs.run import Budget


class NonFiniteLossError(RuntimeError):
    """The objective became NaN or infinite; the run is recorded as failed with the step."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"non-finite loss {value} at step {step}")
        self.step = step


@dataclass
class BudgetUse:
    """What a run actually consumed, compared with its declared ``Budget``."""

    optimizer_steps: int = 0
    forget_examples: int = 0
    retain_examples: int = 0
    forward_passes: int = 0  # of the trained model, prepare/finalize included
    reference_forward_passes: int = 0
    stopped_early_at: int | None = None

    def exceeded(self, budget: Budget) -> list[str]:
        """Reasons this use breaks ``budget`` (empty when it obeys it)."""
        reasons = []
        if self.optimizer_steps > budget.steps:
            reasons.append(f"{self.optimizer_steps} optimizer steps > {budget.steps}")
        per_set = budget.steps * budget.grad_accum * budget.batch_size
        if self.forget_examples > per_set or self.retain_examples > per_set:
            reasons.append(f"examples {self.forget_examples}/{self.retain_examples} > {per_set}")
        if self.forward_passes > budget.forward_pass_limit:
            reasons.append(f"{self.forward_passes} forward passes > {budget.forward_pass_limit} "
                           f"({budget.forward_passes_per_step} per micro-batch)")
        return reasons


@dataclass
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    use: BudgetUse = field(default_factory=BudgetUse)
    scoring: bool = False  # True while callbacks run


def method_name(method: Method) -> str:
    return method.name or type(method).__name__


def lr_at(step: int, budget: Budget) -> float:
    """Linear warm-up over ``warmup_steps`` (step is 0-based), then ``schedule``: constant ``lr``, or a linear or
    cosine decay from ``lr`` at the end of warm-up to 0 after the last step."""
    if budget.warmup_steps and step < budget.warmup_steps:
        return budget.lr * (step + 1) / budget.warmup_steps
    if budget.schedule == "constant":
        return budget.lr
    span = max(budget.steps - budget.warmup_steps, 1)
    progress = (step - budget.warmup_steps) / span
    if budget.schedule == "linear":
        return budget.lr * (1.0 - progress)
    return budget.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def unlearn(model: torch.nn.Module, method: Method, forget: Sequence[Encoded], retain: Sequence[Encoded],
            budget: Budget, seed: int, pad_id: int, reference: ReferenceModel | None = None,
            callbacks: Sequence[Callback] = (), idk: Sequence[Encoded] | None = None) -> TrainResult:
    """Minimise ``method.loss`` for ``budget.steps`` AdamW steps; returns per-step losses and diagnostics.

    ``idk`` (aligned with ``forget``: the same questions answered "I don't know") is required by methods with
    ``needs_idk``. ``method.prepare`` runs before the optimizer is built (it may freeze parameters) and
    ``method.finalize`` after the last step.
    """
    if method.needs_reference and reference is None:
        raise RuntimeError(f"{method_name(method)} needs the frozen reference model")
    if method.needs_idk and (idk is None or len(idk) != len(forget)):
        raise RuntimeError(f"{method_name(method)} needs one IDK answer per forget item")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    forget_batches = EpochSampler(forget, budget.batch_size, pad_id, generator)
    retain_batches = EpochSampler(retain, budget.batch_size, pad_id, generator) if method.needs_retain else None
    ctx = LossContext(reference=reference)
    result = TrainResult(steps=0)
    use = result.use
    ref_passes_before = reference.forward_passes if reference is not None else 0

    def count_forward(module, args, kwargs):
        if not result.scoring:  # the harness's own scoring at checkpoints is not the method's budget
            use.forward_passes += 1

    hook = model.register_forward_pre_hook(count_forward, with_kwargs=True)
    try:
        _run(model, method, forget_batches, retain_batches, budget, idk, device, ctx, result, callbacks)
    finally:
        hook.remove()
    if reference is not None:
        use.reference_forward_passes = reference.forward_passes - ref_passes_before
    return result


def _run_callbacks(model: torch.nn.Module, callbacks: Sequence[Callback], state: StepState,
                   result: TrainResult) -> None:
    """Run ``callbacks`` in eval mode with the forward-pass counter paused (harness scoring is not the method's
    budget), then return the model to training mode."""
    model.eval()
    result.scoring = True
    try:
        for callback in callbacks:
            callback(model, state)
    finally:
        result.scoring = False
    model.train()


def _run(model, method, forget_batches, retain_batches, budget, idk, device, ctx, result, callbacks) -> None:
    use = result.use
    method.prepare(model, ctx)
    if is_adapted(model):
        freeze_base(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=budget.lr, weight_decay=budget.weight_decay)
    model.train()
    every = budget.callback_every
    before_update = [c for c in callbacks if getattr(c, "before_update", False)] if every else []
    after_update = [c for c in callbacks if not getattr(c, "before_update", False)] if every else []
    start = time.perf_counter()
    for step in range(budget.steps):
        lr = lr_at(step, budget)
        for group in optimizer.param_groups:
            group["lr"] = lr
        ctx.step = step
        step_loss, diagnostics = 0.0, {}
        for _ in range(budget.grad_accum):
            rows = forget_batches.next_rows()
            use.forget_examples += len(rows)
            use.retain_examples += budget.batch_size if retain_batches else 0
            mine = shard(rows)  # this process's rows of the global batch (all of them on one device)
            batch = UnlearnBatch(forget_batches.collate(mine).to(device),
                                 retain_batches.collate(shard(retain_batches.next_rows())).to(device)
                                 if retain_batches else None,
                                 forget_batches.collate(mine, idk).to(device) if method.needs_idk else None)
            with runtime().autocast_context():  # bf16 mixed precision where the run asks for it
                loss, diagnostics = method.loss(model, batch, ctx)
            value = average_scalar(loss.item())
            if not math.isfinite(value):
                raise NonFiniteLossError(step + 1, value)
            (loss / budget.grad_accum).backward()
            step_loss += value / budget.grad_accum
        average_gradients(params)  # data-parallel processes: the global batch's gradient on every process
        if before_update and step % every == 0:  # e.g. the G-effect of this step's own gradient at theta_step
            _run_callbacks(model, before_update, StepState(step, step_loss, lr, diagnostics), result)
        if budget.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, budget.max_grad_norm)
        optimizer.step()
        use.optimizer_steps += 1
        optimizer.zero_grad(set_to_none=True)
        result.steps = step + 1
        result.losses.append(step_loss)
        result.diagnostics.append(diagnostics)
        if after_update and (step + 1) % every == 0:
            state = StepState(step + 1, step_loss, lr, diagnostics)
            _run_callbacks(model, after_update, state, result)
            if state.stop:
                use.stopped_early_at = step + 1
                break
    method.finalize(model, ctx)
    result.seconds = time.perf_counter() - start
    model.eval()
