"""The method interface: an unlearning objective and nothing more.

A method is a registered class with a ``Params`` dataclass (documented defaults and a declared ``search_space``)
and ``forget_loss(model, batch, ctx)`` returning a scalar to *minimise* plus detached diagnostics. The loop,
optimizer, budget and evaluation belong to the harness, so every method gets the same ones.

Every ``Params`` derives from ``ObjectiveParams``, whose ``retain_loss`` / ``retain_weight`` add a retain-set
regulariser to any objective (``nll``: + lambda NLL_retain; ``kl``: + lambda KL(p_ref || p_theta) on retain
tokens), so GA+KL, NPO+KL, WGA+KL, ... are configurations of one class each, not copies. Two more options of every
objective change how the training loop steps on it (``bench.run.train``): ``rectify: gru`` projects the step's
gradient off the retain gradient where they conflict (GRU), ``sam_rho > 0`` takes the forget objective's gradient at
a sharpness-aware perturbation of the weights (SAM). So GA+GRU, NPO+GRU, NPO+SAM are board entries, not classes.

What a method needs is declared, and the harness provides exactly that:

* ``needs_reference``: the frozen target (loaded once, and only for such methods);
* ``needs_retain``: a retain batch paired with each forget batch;
* ``needs_idk``: the forget questions with "I don't know" answers (``batch.idk``, same rows as ``batch.forget``);
* ``needs_alternate``: the forget questions with plausible alternate answers (``batch.alternate``, same rows as
  ``batch.forget``; ``bench.data.alternates`` makes them from the task's own facts).

The regulariser adds to the first two on the instance (``kl`` needs the reference and the retain set; ``rectify:
gru`` needs the retain set). ``prepare`` runs before the first step (e.g. freeze parameters), ``end_step`` after each
optimizer step (e.g. a dual variable's update) and ``finalize`` after the last (e.g. negate a task vector).

The loop's other contract lives here too, so that what it calls stays below it: ``StepState`` is what a training
callback (the G-effect recorder, the control checkpoints) sees after a step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bench.data.tokenize import IGNORE, TokenBatch
from bench.registry import METHODS, RegistryError
from bench.specs.mapping import SpecError, from_mapping
from bench.specs.papers import Paper

RETAIN_LOSSES = ("none", "nll", "kl")
RECTIFIERS = ("none", "gru")


def check_positive(**values: float) -> None:
    for field, value in values.items():
        if not value > 0:
            raise ValueError(f"{field}: must be > 0, got {value}")


def check_fraction(**values: float) -> None:
    for field, value in values.items():
        if not 0 < value <= 1:
            raise ValueError(f"{field}: must be in (0, 1], got {value}")


@dataclass(frozen=True)
class ObjectiveParams:
    """Hyper-parameters every method has: the optional retain regulariser and the two gradient options.

    ``retain_loss``: ``none`` | ``nll`` (L += lambda * NLL_retain) | ``kl`` (L += lambda * KL(p_ref || p_theta) on
    retain answer tokens); ``retain_weight`` is lambda. ``rectify``: ``none`` | ``gru`` (each step's gradient
    projected off the retain gradient when they conflict, with ``gru_gamma`` the weight of the current retain
    gradient in its moving average: ``bench.run.train.rectified``). ``sam_rho``: 0 (off) or the radius rho of a
    sharpness-aware step on the forget objective (``bench.run.train.sharpness_aware``). Subclasses add their own
    fields (all with defaults) and validate them in ``check``. ``search_space`` maps a field to the values a tuner
    may try (merged over the class hierarchy by ``search_space_of``). ``late_fields`` name the fields added after
    run ids were published: at their default they stay out of ``full_hparams`` and so out of every run id (merged
    over the hierarchy by ``late_fields_of``); their defaults must never change.
    """

    retain_loss: str = "none"
    retain_weight: float = 1.0
    rectify: str = "none"
    gru_gamma: float = 0.8  # GRU's reference code: g_r <- 0.8 g_r(step) + 0.2 g_r(previous average)
    sam_rho: float = 0.0
    search_space: ClassVar[dict[str, list]] = {"retain_loss": ["none", "nll", "kl"],
                                               "retain_weight": [0.5, 1.0, 2.0, 5.0]}
    late_fields: ClassVar[frozenset[str]] = frozenset({"rectify", "gru_gamma", "sam_rho"})

    def __post_init__(self) -> None:
        if self.retain_loss not in RETAIN_LOSSES:
            raise ValueError(f"retain_loss: must be one of {', '.join(RETAIN_LOSSES)}, got {self.retain_loss!r}")
        if self.rectify not in RECTIFIERS:
            raise ValueError(f"rectify: must be one of {', '.join(RECTIFIERS)}, got {self.rectify!r}")
        check_positive(retain_weight=self.retain_weight)
        check_fraction(gru_gamma=self.gru_gamma)
        if self.gru_gamma != ObjectiveParams.gru_gamma and self.rectify != "gru":
            raise ValueError("gru_gamma: only used with rectify: gru")
        if not self.sam_rho >= 0:
            raise ValueError(f"sam_rho: must be >= 0, got {self.sam_rho}")
        self.check()

    def check(self) -> None:
        """Raise ``ValueError("field: problem")`` for an invalid value."""


def search_space_of(params_cls: type) -> dict[str, list]:
    """The declared search space of a Params class: its ``search_space`` over the base classes' (subclass wins)."""
    merged: dict[str, list] = {}
    for klass in reversed(params_cls.__mro__):
        merged.update(getattr(klass, "__dict__", {}).get("search_space", {}) or {})
    names = {f.name for f in dataclasses.fields(params_cls)}
    return {k: v for k, v in merged.items() if k in names}


def late_fields_of(params_cls: type) -> frozenset[str]:
    """The fields a Params class declares (with its base classes) as added after run ids were published."""
    return frozenset().union(*(getattr(klass, "__dict__", {}).get("late_fields", frozenset())
                               for klass in params_cls.__mro__))


@dataclass
class UnlearnBatch:
    forget: TokenBatch
    retain: TokenBatch | None = None
    idk: TokenBatch | None = None  # forget questions answered "I don't know" (same rows as ``forget``)
    alternate: TokenBatch | None = None  # forget questions with a plausible alternate answer (same rows)


class ReferenceModel:
    """The frozen target. Its per-item token log-probs never change, so they are computed once per item and
    cached; logits and hidden states (too large to keep for every item) are recomputed under inference mode."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._token_logprobs: dict[tuple[str, int], torch.Tensor] = {}
        self.forward_passes = 0

    @torch.inference_mode()
    def token_logprobs(self, batch: TokenBatch, key: str) -> torch.Tensor:
        """log p_ref(a_i | q, a_<i) at every position, shaped [B, L-1] like ``token_logprobs(model, batch)``
        (zero outside the answer); ``key`` names the source list of ``batch.index`` (``forget``, ``idk``, ...)."""
        rows = batch.index.tolist()
        missing = [r for r, i in enumerate(rows) if (key, i) not in self._token_logprobs]
        if missing:
            sub = _rows(batch, missing)
            logp, mask = token_logprobs(self.model, sub)
            self.forward_passes += 1
            lengths = sub.attention_mask.sum(-1).tolist()
            for r, values, m, n in zip(missing, logp, mask, lengths):
                self._token_logprobs[(key, rows[r])] = (values * m)[: max(n - 1, 0)].cpu().clone()
        out = torch.zeros(batch.input_ids.shape[0], batch.input_ids.shape[1] - 1)
        for r, i in enumerate(rows):
            cached = self._token_logprobs[(key, i)]
            out[r, : cached.shape[0]] = cached
        return out.to(batch.input_ids.device)

    def sequence_logprob(self, batch: TokenBatch, key: str) -> torch.Tensor:
        """log p_ref(a | q) = sum of answer-token log-probs, per row."""
        return self.token_logprobs(batch, key).sum(-1)

    @torch.inference_mode()
    def logits(self, batch: TokenBatch) -> torch.Tensor:
        """Next-token logits [B, L-1, V] of the frozen model (not cached: V floats per token)."""
        self.forward_passes += 1
        return self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()

    @torch.inference_mode()
    def hidden_state(self, batch: TokenBatch, layer: int) -> torch.Tensor:
        """Output of decoder layer ``layer`` (0-based), [B, L, d]."""
        self.forward_passes += 1
        return hidden_state(self.model, batch, layer)


def _rows(batch: TokenBatch, rows: list[int]) -> TokenBatch:
    idx = torch.tensor(rows)
    return TokenBatch(batch.input_ids[idx], batch.attention_mask[idx], batch.labels[idx], batch.index[idx])


@dataclass
class LossContext:
    reference: ReferenceModel | None = None
    step: int = 0


@dataclass
class StepState:
    """What a training-loop callback sees after optimizer step ``step`` (1-based): the step's loss, learning rate and
    diagnostics; a callback sets ``stop`` to end training after this step (early stopping)."""

    step: int
    loss: float
    lr: float
    diagnostics: dict
    stop: bool = False


Callback = Callable[[torch.nn.Module, StepState], None]  # called by the loop every ``budget.callback_every`` steps


def next_token_logits(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """Logits of position t predicting token t+1, [B, L-1, V], in float32."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()


def answer_mask(batch: TokenBatch) -> torch.Tensor:
    """Float mask [B, L-1] of the positions whose next token is an answer token."""
    return (batch.labels[:, 1:] != IGNORE).float()


def gather_logprobs(logits: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
    """log softmax(logits)[target] at every position, [B, L-1] (targets clamped on masked positions)."""
    targets = batch.labels[:, 1:].clamp_min(0)
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return -nll.view_as(targets)


def token_logprobs(model: torch.nn.Module, batch: TokenBatch,
                   temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(a_i | q, a_<i) at every position, float mask of answer positions), both shaped [B, L-1]; with
    ``temperature`` T != 1 the log-probs of the tempered distribution softmax(z / T)."""
    logits = next_token_logits(model, batch)
    if temperature != 1.0:
        logits = logits / temperature
    return gather_logprobs(logits, batch), answer_mask(batch)


def row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean over masked positions: (1/T_b) sum_i m_bi v_bi, shape [B]."""
    return (values * mask).sum(-1) / mask.sum(-1).clamp_min(1)


def sequence_nll(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """Per-row NLL(a) = -(1/T) sum_i log p_i over answer tokens, shape [B]."""
    logp, mask = token_logprobs(model, batch)
    return -row_mean(logp, mask)


def hidden_state(model: torch.nn.Module, batch: TokenBatch, layer: int) -> torch.Tensor:
    """Residual-stream output of decoder layer ``layer`` (0-based): ``hidden_states[layer + 1]``, [B, L, d]."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    return out.hidden_states[layer + 1]


def kl_ref_to_model(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the per-row mean over answer positions of
    KL(p_ref || p_theta) = sum_v p_ref(v) (log p_ref(v) - log p_theta(v))."""
    ref_logp = torch.log_softmax(ref_logits, dim=-1)
    logp = torch.log_softmax(logits, dim=-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return row_mean(kl, mask).mean()


def retain_regulariser(kind: str, model: torch.nn.Module, retain: TokenBatch,
                       reference: ReferenceModel | None) -> torch.Tensor:
    """``nll``: E_retain[NLL(a)]; ``kl``: E_retain[(1/T) sum_i KL(p_ref(.|x_<i) || p_theta(.|x_<i))]."""
    if kind == "nll":
        return sequence_nll(model, retain).mean()
    if kind == "kl":
        if reference is None:
            raise RuntimeError("retain_loss=kl needs the frozen reference model")
        return kl_ref_to_model(next_token_logits(model, retain), reference.logits(retain), answer_mask(retain))
    raise ValueError(f"retain_loss: unknown regulariser {kind!r}")


class Method:
    """Base class of unlearning objectives. Subclasses set ``Params`` and implement ``forget_loss``.

    ``loss`` = ``forget_loss`` + ``retain_term`` (retain_weight * regulariser when ``params.retain_loss`` is not
    ``none``); a sharpness-aware step perturbs the weights for ``forget_loss`` only.
    """

    name: ClassVar[str] = ""
    # bump when a change can change the method's numbers: it enters the run ids of its cells (``RunSpec``)
    version: ClassVar[str] = "1"
    paper: ClassVar[str] = ""  # the citation as text: "Authors Year, Title (arXiv id)"
    bibtex: ClassVar[tuple[Paper, ...]] = ()  # the BibTeX entries ``ubench cite`` prints (the objective's first)
    summary: ClassVar[str] = ""  # one line for the README's method table (default: the docstring's first line)
    Params: ClassVar[type] = ObjectiveParams
    needs_reference: ClassVar[bool] = False
    needs_retain: ClassVar[bool] = False
    needs_idk: ClassVar[bool] = False
    needs_alternate: ClassVar[bool] = False
    # whether the method is defined on a LoRA adapter's parameters (``RunSpec.adapter``); False where ``finalize``
    # does weight arithmetic that does not carry over to the adapter's factors B A
    supports_adapter: ClassVar[bool] = True

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()
        regulariser = self.regulariser
        # Instance attributes: what this configuration needs (the objective's needs plus the regulariser's and GRU's).
        self.needs_retain = (type(self).needs_retain or regulariser != "none"
                             or getattr(self.params, "rectify", "none") != "none")
        self.needs_reference = type(self).needs_reference or regulariser == "kl"

    @property
    def regulariser(self) -> str:
        return getattr(self.params, "retain_loss", "none")

    def prepare(self, model: torch.nn.Module, ctx: LossContext) -> None:
        """Called once before the first step (e.g. choose the trainable parameters)."""

    def finalize(self, model: torch.nn.Module, ctx: LossContext) -> None:
        """Called once after the last step (e.g. turn the fine-tuned weights into a negated task vector)."""

    def end_step(self, ctx: LossContext, diagnostics: Sequence[dict]) -> None:
        """Called by the training loop after each optimizer step with the diagnostics of that step's micro-batches
        (``ctx.step`` is the step's 0-based index). Only training steps reach it: the G-effect measurement and any
        other call of ``loss`` outside the loop do not, so state updated here follows the optimizer steps alone."""

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError(f"{type(self).__name__} implements neither forget_loss nor loss")

    def retain_term(self, model: torch.nn.Module, batch: UnlearnBatch,
                    ctx: LossContext) -> tuple[torch.Tensor | None, dict]:
        """retain_weight * regulariser on the retain batch, with its diagnostics; None where ``retain_loss`` is
        ``none``."""
        kind = self.regulariser
        if kind == "none":
            return None, {}
        if batch.retain is None:
            raise RuntimeError(f"retain_loss={kind} needs a retain batch")
        value = retain_regulariser(kind, model, batch.retain, ctx.reference)
        return self.params.retain_weight * value, {f"retain_{kind}": value.item()}

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch, ctx: LossContext) -> tuple[torch.Tensor, dict]:
        loss, diagnostics = self.forget_loss(model, batch, ctx)
        retain, more = self.retain_term(model, batch, ctx)
        if retain is None:
            return loss, diagnostics
        return loss + retain, {**diagnostics, **more}


def make_method(name: str, overrides: dict[str, Any] | None = None, source: str = "", path: str = "") -> Method:
    """Instantiate registered method ``name`` with hyper-parameter ``overrides``.

    An unknown name raises ``SpecError`` with a did-you-mean hint; unknown, ill-typed or out-of-range
    hyper-parameters raise ``SpecError``; both name ``source`` (a file) and ``path`` (``methods[2]``) when given.
    """
    prefix = f"{source}: {path + '.' if path else ''}" if source else ""
    try:
        cls = METHODS.get(name)
    except RegistryError as exc:
        raise SpecError(f"{prefix}method: {exc}" if prefix else str(exc)) from exc
    params = from_mapping(cls.Params, dict(overrides or {}), source or f"method {name}",
                          f"{path}.params" if path else "params")
    try:
        instance = cls(params)
    except ValueError as exc:
        raise SpecError(f"{prefix}{exc}" if prefix else f"method {name}: {exc}") from exc
    instance.name = name
    return instance


def full_hparams(method: Method) -> dict[str, Any]:
    """Every hyper-parameter of ``method`` with its defaults filled in (what a run id hashes), except a late field
    (``late_fields_of``) at its default: leaving those out keeps the ids of every run made before they existed."""
    params = method.params
    late = late_fields_of(type(params))
    defaults = {f.name: f.default for f in dataclasses.fields(params)}
    return {name: value for name, value in asdict(params).items() if name not in late or value != defaults[name]}


__all__ = ["Method", "ObjectiveParams", "UnlearnBatch", "LossContext", "ReferenceModel", "StepState", "make_method",
           "sequence_nll", "token_logprobs", "SpecError", "check_positive", "check_fraction", "full_hparams",
           "search_space_of", "late_fields_of", "row_mean", "answer_mask", "gather_logprobs", "next_token_logits",
           "hidden_state", "kl_ref_to_model", "retain_regulariser"]
