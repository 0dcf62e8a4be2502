"""The one unlearning loop: plain PyTorch, AdamW, gradient accumulation, paired forget/retain batches, callbacks.

Every method runs through ``unlearn`` under the same ``Budget``: ``budget.steps`` optimizer steps, each over
``budget.grad_accum`` micro-batches of ``budget.batch_size`` forget items (and as many retain items when the method
asks for them). Batches come from per-set samplers that reshuffle every pass with a generator seeded from the run's
seed, so the same seed gives the same batches, losses and weights on CPU.

Two options of every objective change the gradient the loop steps with, so they live here rather than in a method:
``sam_rho > 0`` takes the forget objective's gradient at a sharpness-aware perturbation of the weights
(``sharpness_aware``), and ``rectify: gru`` projects the step's gradient off a moving average of retain gradients
where the two conflict (``rectified``, ``GradientRectifier``). After each optimizer step the loop calls
``method.end_step`` (e.g. PDU's dual ascent), so per-step state follows the training steps only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from bench.data.sampling import EpochSampler
from bench.data.tokenize import Encoded, TokenBatch
from bench.methods.base import Callback, LossContext, Method, ReferenceModel, StepState, UnlearnBatch, sequence_nll
from bench.models.adapters import freeze_base, is_adapted
from bench.runtime.device import runtime
from bench.runtime.distributed import average_gradients, average_in_place, average_scalar, shard
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


@dataclass
class _Batches:
    """The run's micro-batches: forget rows from one seeded sampler (retain rows from another, drawn after them, when
    the method needs them), with the same rows of the aligned answer lists the method asks for (IDK, alternate)."""

    forget: EpochSampler
    retain: EpochSampler | None
    idk: Sequence[Encoded] | None
    alternate: Sequence[Encoded] | None
    device: torch.device

    def next(self, use: BudgetUse) -> UnlearnBatch:
        rows = self.forget.next_rows()
        use.forget_examples += len(rows)
        use.retain_examples += len(rows) if self.retain else 0
        mine = shard(rows)  # this process's rows of the global batch (all of them on one device)
        retain = self.retain.collate(shard(self.retain.next_rows())).to(self.device) if self.retain else None
        aligned = [self.forget.collate(mine, answers).to(self.device) if answers is not None else None
                   for answers in (self.idk, self.alternate)]
        return UnlearnBatch(self.forget.collate(mine).to(self.device), retain, *aligned)


def unlearn(model: torch.nn.Module, method: Method, forget: Sequence[Encoded], retain: Sequence[Encoded],
            budget: Budget, seed: int, pad_id: int, reference: ReferenceModel | None = None,
            callbacks: Sequence[Callback] = (), idk: Sequence[Encoded] | None = None,
            alternate: Sequence[Encoded] | None = None) -> TrainResult:
    """Minimise ``method.loss`` for ``budget.steps`` AdamW steps; returns per-step losses and diagnostics.

    ``idk`` and ``alternate`` (aligned with ``forget``: the same questions answered "I don't know", or with a
    plausible alternate answer) are required by methods with ``needs_idk`` / ``needs_alternate``.
    ``method.prepare`` runs before the optimizer is built (it may freeze parameters), ``method.end_step`` after
    each optimizer step and ``method.finalize`` after the last step.
    """
    if method.needs_reference and reference is None:
        raise RuntimeError(f"{method_name(method)} needs the frozen reference model")
    if method.needs_idk and (idk is None or len(idk) != len(forget)):
        raise RuntimeError(f"{method_name(method)} needs one IDK answer per forget item")
    if method.needs_alternate and (alternate is None or len(alternate) != len(forget)):
        raise RuntimeError(f"{method_name(method)} needs one alternate answer per forget item")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    batches = _Batches(EpochSampler(forget, budget.batch_size, pad_id, generator),
                       EpochSampler(retain, budget.batch_size, pad_id, generator) if method.needs_retain else None,
                       idk if method.needs_idk else None, alternate if method.needs_alternate else None, device)
    ctx = LossContext(reference=reference)
    result = TrainResult(steps=0)
    use = result.use
    ref_passes_before = reference.forward_passes if reference is not None else 0

    def count_forward(module, args, kwargs):
        if not result.scoring:  # the harness's own scoring at checkpoints is not the method's budget
            use.forward_passes += 1

    hook = model.register_forward_pre_hook(count_forward, with_kwargs=True)
    try:
        _run(model, method, batches, budget, ctx, result, callbacks)
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


def _run(model: torch.nn.Module, method: Method, batches: _Batches, budget: Budget, ctx: LossContext,
         result: TrainResult, callbacks: Sequence[Callback]) -> None:
    use = result.use
    method.prepare(model, ctx)
    if is_adapted(model):
        freeze_base(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=budget.lr, weight_decay=budget.weight_decay)
    rectifier = (GradientRectifier(method.params.gru_gamma)
                 if getattr(method.params, "rectify", "none") == "gru" else None)
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
        step_loss, micro = _accumulate(model, method, batches, budget, ctx, use, params, rectifier)
        diagnostics = micro[-1]
        average_gradients(params)  # data-parallel processes: the global batch's gradient on every process
        if rectifier is not None:  # before the G-effect, so it measures the step actually taken
            diagnostics = {**diagnostics, **rectifier.apply(params)}
        if before_update and step % every == 0:  # e.g. the G-effect of this step's own gradient at theta_step
            _run_callbacks(model, before_update, StepState(step, step_loss, lr, diagnostics), result)
        if budget.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, budget.max_grad_norm)
        optimizer.step()
        use.optimizer_steps += 1
        optimizer.zero_grad(set_to_none=True)
        if before_update and step % every == 0:  # the same callbacks see the update they measured before
            taken = [c.step_taken for c in before_update if hasattr(c, "step_taken")]
            _run_callbacks(model, taken, StepState(step, step_loss, lr, diagnostics), result)
        method.end_step(ctx, micro)
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


def _accumulate(model: torch.nn.Module, method: Method, batches: _Batches, budget: Budget, ctx: LossContext,
                use: BudgetUse, params: list[torch.nn.Parameter],
                rectifier: GradientRectifier | None) -> tuple[float, list[dict]]:
    """One optimizer step's gradient: ``budget.grad_accum`` micro-batches, each adding grad(loss) / grad_accum to
    the parameters' ``.grad`` (and its retain gradient to GRU's); returns the step's mean loss and the diagnostics
    of each micro-batch."""
    step_loss, micro = 0.0, []
    for _ in range(budget.grad_accum):
        batch = batches.next(use)
        with runtime().autocast_context():  # bf16 mixed precision where the run asks for it
            value, diagnostics = _backward(model, method, batch, ctx, params, budget.grad_accum)
            if rectifier is not None:
                rectifier.accumulate(model, batch.retain, params, budget.grad_accum)
        step_loss += value / budget.grad_accum
        micro.append(diagnostics)
    return step_loss, micro


def _checked(loss: torch.Tensor, step: int) -> float:
    """The loss value averaged over processes; ``NonFiniteLossError`` (1-based step) when it is NaN or infinite."""
    value = average_scalar(loss.item())
    if not math.isfinite(value):
        raise NonFiniteLossError(step + 1, value)
    return value


def _backward(model: torch.nn.Module, method: Method, batch: UnlearnBatch, ctx: LossContext,
              params: list[torch.nn.Parameter], grad_accum: int) -> tuple[float, dict]:
    """Add grad(loss) / grad_accum of one micro-batch to the parameters' ``.grad`` (sharpness-aware where the
    method's ``sam_rho`` > 0); returns the loss value and the diagnostics."""
    rho = getattr(method.params, "sam_rho", 0.0)
    if rho > 0:
        return sharpness_aware(model, method, batch, ctx, params, rho, grad_accum)
    loss, diagnostics = method.loss(model, batch, ctx)
    value = _checked(loss, ctx.step)
    (loss / grad_accum).backward()
    return value, diagnostics


def sharpness_aware(model: torch.nn.Module, method: Method, batch: UnlearnBatch, ctx: LossContext,
                    params: list[torch.nn.Parameter], rho: float, grad_accum: int) -> tuple[float, dict]:
    """SAM on the forget objective (Foret et al. 2021; for unlearning, Fan et al. 2025, arXiv 2502.05374):
    min_theta max_{||e|| <= rho} L_f(theta + e) + R(theta), the inner maximum at its first-order solution
    e = rho g / ||g||_2 with g = grad L_f(theta) (one norm over all trainable parameters). Adds
    grad L_f(theta + e) / grad_accum to ``.grad`` (the weights are restored exactly afterwards), then
    grad R(theta) / grad_accum, R the method's retain term (``Method.retain_term``). Returns L_f(theta) + R(theta)
    and the diagnostics at theta."""
    forget, diagnostics = method.forget_loss(model, batch, ctx)
    grads = torch.autograd.grad(forget, params, allow_unused=True)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float())
                                                 for g in grads if g is not None])).item()
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p.add_(g, alpha=rho / max(norm, 1e-12))
        perturbed, _ = method.forget_loss(model, batch, ctx)
        (perturbed / grad_accum).backward()
    finally:
        with torch.no_grad():
            for p, original in zip(params, saved):
                p.copy_(original)
    retain, more = method.retain_term(model, batch, ctx)
    value = _checked(forget.detach() if retain is None else forget.detach() + retain.detach(), ctx.step)
    if retain is not None:
        (retain / grad_accum).backward()
    return value, {**diagnostics, **more}


def rectified(g_u: torch.Tensor, g_r: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """GRU (Wang et al., ICML 2025, arXiv 2503.09117): the unlearning gradient g_u where g_u . g_r >= 0, else its
    projection onto the normal plane of the retain gradient g_r, g_u - (g_u . g_r / ||g_r||^2) g_r, whose inner
    product with g_r is 0: a step along -g_u then does not raise the retain loss to first order. Returns the
    gradient and whether it was projected."""
    dot = torch.dot(g_u, g_r)
    if dot >= 0:
        return g_u, False
    return g_u - (dot / torch.dot(g_r, g_r)) * g_r, True


def _flat(tensors: Sequence[torch.Tensor | None], params: Sequence[torch.nn.Parameter]) -> torch.Tensor:
    """One float32 vector of ``tensors`` (zeros where a parameter has none), in ``params``' order."""
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1).float()
                      for t, p in zip(tensors, params)])


class GradientRectifier:
    """GRU's retain direction: each step's gradient of the retain NLL E_retain[NLL(a)] on the step's retain
    micro-batches (accumulated like the objective's), smoothed over steps as in the reference code,
    g_r <- gamma g_r(step) + (1 - gamma) g_r (0 before the first step); ``apply`` rectifies ``.grad`` against it."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma
        self.step_grad: torch.Tensor | None = None
        self.average: torch.Tensor | None = None

    def accumulate(self, model: torch.nn.Module, retain: TokenBatch | None, params: list[torch.nn.Parameter],
                   grad_accum: int) -> None:
        if retain is None:
            raise RuntimeError("rectify: gru needs a retain batch")
        loss = sequence_nll(model, retain).mean() / grad_accum
        flat = _flat(torch.autograd.grad(loss, params, allow_unused=True), params)
        self.step_grad = flat if self.step_grad is None else self.step_grad + flat

    def apply(self, params: list[torch.nn.Parameter]) -> dict[str, float]:
        """Rectify the parameters' ``.grad`` (g_u, the step's gradient) against the updated average g_r; returns
        the diagnostics: the cosine of g_u and g_r before, and whether g_u was projected."""
        if self.step_grad is None:
            raise RuntimeError("GradientRectifier.apply before any retain gradient")
        average_in_place(self.step_grad)  # data-parallel processes: the global batch's retain gradient
        self.average = self.gamma * self.step_grad + (1 - self.gamma) * (
            self.average if self.average is not None else 0.0)
        self.step_grad = None
        g_u = _flat([p.grad for p in params], params)
        new, projected = rectified(g_u, self.average)
        offset = 0
        for p in params:
            n = p.numel()
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.copy_(new[offset: offset + n].view_as(p))
            offset += n
        cosine = torch.nn.functional.cosine_similarity(g_u, self.average, dim=0).item()
        return {"gru_cosine": cosine, "gru_projected": float(projected)}
