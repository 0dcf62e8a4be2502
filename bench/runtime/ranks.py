"""This process's place in a multi-process run, read without loading torch.

A process group exists only once ``torch.distributed`` is imported (``bench.runtime.distributed.init_from_env``
joins it), so a process that has not imported it is rank 0 of 1. The result store asks ``is_main`` before every
write; reading it here keeps the store, and every command that only reads records or specs, free of torch.
"""

from __future__ import annotations

import os
import sys


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    dist = sys.modules.get("torch.distributed")  # not imported: no process group can exist
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))
