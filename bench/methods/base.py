"""The method interface: an unlearning objective and nothing more.

A method is a registered class with a ``Params`` dataclass (documented defaults) and ``loss(model, batch, ctx)``
returning a scalar to *minimise* plus detached diagnostics. The loop, optimizer, budget and evaluation belong to the
harness, so every method gets the same ones. ``needs_reference`` makes the harness load the frozen target once (and
only then); ``needs_retain`` makes it pair each forget batch with a retain batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bench.data.tokenize import IGNORE, TokenBatch
from bench.registry import METHODS, RegistryError
from bench.spec import SpecError, from_mapping


@dataclass(frozen=True)
class NoParams:
    pass


@dataclass
class UnlearnBatch:
    forget: TokenBatch
    retain: TokenBatch | None = None


class ReferenceModel:
    """The frozen target. Its per-item outputs never change, so they are computed once per item and cached."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._sequence_logprob: dict[tuple[str, int], float] = {}

    @torch.inference_mode()
    def sequence_logprob(self, batch: TokenBatch, key: str) -> torch.Tensor:
        """log p_ref(a | q) = sum of answer-token log-probs, per row; ``key`` names the source list of ``index``."""
        rows = batch.index.tolist()
        missing = [r for r, i in enumerate(rows) if (key, i) not in self._sequence_logprob]
        if missing:
            logp, mask = token_logprobs(self.model, _rows(batch, missing))
            for r, value in zip(missing, (logp * mask).sum(-1).tolist()):
                self._sequence_logprob[(key, rows[r])] = value
        return torch.tensor([self._sequence_logprob[(key, i)] for i in rows], device=batch.input_ids.device)


def _rows(batch: TokenBatch, rows: list[int]) -> TokenBatch:
    idx = torch.tensor(rows)
    return TokenBatch(batch.input_ids[idx], batch.attention_mask[idx], batch.labels[idx], batch.index[idx])


@dataclass
class LossContext:
    reference: ReferenceModel | None = None
    step: int = 0


def token_logprobs(model: torch.nn.Module, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(a_i | q, a_<i) at every position, float mask of answer positions), both shaped [B, L-1]."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    targets = batch.labels[:, 1:]
    mask = targets != IGNORE
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.clamp_min(0).flatten(), reduction="none")
    return -nll.view_as(targets), mask.to(logits.dtype)


def sequence_nll(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """Per-row NLL(a) = -(1/T) sum_i log p_i over answer tokens, shape [B]."""
    logp, mask = token_logprobs(model, batch)
    return -(logp * mask).sum(-1) / mask.sum(-1).clamp_min(1)


class Method:
    """Base class of unlearning objectives. Subclasses set ``Params`` and implement ``loss``."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    needs_reference: ClassVar[bool] = False
    needs_retain: ClassVar[bool] = False

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch, ctx: LossContext) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


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
    return cls(params)


def full_hparams(method: Method) -> dict[str, Any]:
    return asdict(method.params)


def check_positive(**values: float) -> None:
    for field, value in values.items():
        if not value > 0:
            raise ValueError(f"{field}: must be > 0, got {value}")


__all__ = ["Method", "UnlearnBatch", "LossContext", "ReferenceModel", "make_method", "sequence_nll",
           "token_logprobs", "SpecError", "check_positive", "full_hparams"]
