"""One run over several processes (GPUs): data-parallel unlearning launched with ``accelerate launch`` or
``torchrun``, e.g. ``accelerate launch --num_processes 4 -m bench.cli run leaderboards/tofu.yaml``.

Both launchers set ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; ``init_from_env`` then joins the process group
(NCCL on GPUs, Gloo on CPU) and each process takes ``cuda:LOCAL_RANK``. The semantics are those of DDP: every
process holds the whole model and draws the same global batch from the same seeded sampler; process r computes the
loss on rows r, r + W, r + 2W, ... of it, and the gradients are averaged over processes (all-reduce) before
clipping and the optimizer step. Every method's loss is a mean over rows, so with equal shards the averaged
gradient is the gradient of the global batch: the run is the same run as on one device, up to the order of
floating-point sums (``tests/test_distributed.py`` checks it on two CPU processes). Evaluation, calibration and the
G-effect see identical weights on every process; only process 0 writes records (``Store.write``).

Not here: sharded parameters (FSDP/ZeRO). A 7B model trains on one 80 GB GPU in bf16 with gradient checkpointing
(``models/tofu_llama2_7b_chat.yaml``); larger models need FSDP, which changes how methods reach the weights.
"""

from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist

from bench.runtime.ranks import is_main as is_main  # re-exported: the rank functions live where torch is not needed
from bench.runtime.ranks import local_rank, world


def init_from_env() -> bool:
    """Join the process group a launcher describes (``WORLD_SIZE`` > 1); True when this is a multi-process run."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def shard(rows: list[int]) -> list[int]:
    """This process's rows of a global batch: rows[rank::world]. The batch must split evenly, or the averaged
    gradient would weight rows unequally."""
    rank, size = world()
    if size == 1:
        return rows
    if len(rows) % size:
        raise ValueError(f"batch_size: a batch of {len(rows)} rows cannot be split evenly over {size} processes")
    return rows[rank::size]


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """grad <- (1/W) sum_r grad_r for every parameter, in one flattened all-reduce per dtype."""
    rank, size = world()
    if size == 1:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= size
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()


def average_in_place(tensor: torch.Tensor) -> None:
    """tensor <- (1/W) sum_r tensor_r over processes (unchanged on one process)."""
    rank, size = world()
    if size == 1:
        return
    dist.all_reduce(tensor)
    tensor /= size


def average_scalar(value: float) -> float:
    """The mean of ``value`` over processes (a NaN anywhere is a NaN everywhere, so all processes stop together)."""
    rank, size = world()
    if size == 1:
        return value
    device = torch.device("cuda", local_rank()) if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([value if math.isfinite(value) else math.nan], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / size
