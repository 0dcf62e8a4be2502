"""Where and in what precision a run computes: device selection, bf16 autocast, gradient checkpointing, and batch
sizes that shrink instead of failing when a GPU runs out of memory.

The same ``RunSpec`` runs on CPU or GPU: the device is not part of a run's identity (a record names it in
``env.device``), so a board computed on a GPU machine and one computed on a laptop share run ids and differ only
by floating-point round-off. ``Runtime`` is set once per run (``use_runtime``) and read by the training loop and
the evaluation engine, so no function between them needs a device argument:

* ``device``: ``$UBENCH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) or, when unset or ``auto``, the first
  CUDA device if there is one, else the CPU;
* ``autocast``: ``"bfloat16"`` runs forward passes under ``torch.autocast`` (weights and optimizer state stay in
  their own dtype, fp32 by default: bf16 mixed precision); ``""`` computes in the weights' dtype;
* ``gradient_checkpointing``: recompute activations in the backward pass (``model.gradient_checkpointing_enable``),
  trading about a third more compute for activation memory that no longer grows with depth (7B models on one GPU).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

DEVICE_ENV = "UBENCH_DEVICE"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def select_device(requested: str | None = None) -> torch.device:
    """``requested`` (or ``$UBENCH_DEVICE``); ``auto``/unset = ``cuda`` when available, else ``cpu``. An unavailable
    device is a one-line error rather than a crash deep in a forward pass."""
    name = (requested or os.environ.get(DEVICE_ENV) or "auto").strip()
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per data-parallel process
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"{DEVICE_ENV}: unknown device {name!r} (use cpu, cuda, cuda:N, mps or auto)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{DEVICE_ENV}: device {name!r} requested but torch sees no CUDA device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{DEVICE_ENV}: device {name!r} requested but MPS is not available")
    return device


def device_name(device: torch.device) -> str:
    """``cpu`` or e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)``: what a record's ``env.device`` says."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def dtype_of(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


@dataclass(frozen=True)
class Runtime:
    device: torch.device = torch.device("cpu")
    autocast: str = ""  # "" or a DTYPES name (bf16 mixed precision)
    gradient_checkpointing: bool = False

    def autocast_context(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` on the run's device in the run's autocast dtype, or a no-op."""
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype_of(self.autocast))


_RUNTIME = Runtime()


def runtime() -> Runtime:
    return _RUNTIME


@contextlib.contextmanager
def use_runtime(rt: Runtime) -> Iterator[Runtime]:
    """Make ``rt`` the runtime of the enclosed code (one run), restoring the previous one afterwards."""
    global _RUNTIME
    previous, _RUNTIME = _RUNTIME, rt
    try:
        yield rt
    finally:
        _RUNTIME = previous


def reset_peak_memory(device: torch.device) -> None:
    """Start a new CUDA peak-memory window (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """``torch.cuda.max_memory_allocated`` since the last ``reset_peak_memory``, in GiB; ``None`` off CUDA (the
    CPU's resident set is a process property, not a run's)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


T = TypeVar("T")


def adaptive_batches(rows: Sequence[T], batch_size: int, step: Callable[[list[T]], None]) -> int:
    """Call ``step`` on consecutive chunks of ``rows`` of ``batch_size``; when a chunk runs out of device memory,
    free the cache, halve the size and retry that chunk (down to 1, then re-raise). The reduced size is kept for
    the remaining chunks (they come sorted by length, so later ones are no smaller). Returns the final size."""
    size, start = max(1, batch_size), 0
    while start < len(rows):
        chunk = list(rows[start: start + size])
        try:
            step(chunk)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not is_out_of_memory(exc) or size == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            size = max(1, size // 2)
            continue
        start += len(chunk)
    return size
