"""The shipped checkpoints of the embedded task: build them (``ubench checkpoints build --ship``) and check a local
build against them (``ubench checkpoints verify``).

Building ships a tokenizer and, for each replicate seed, a target and a retain oracle into
``tasks/<family>/checkpoints/`` (``bench.models.tiny``). Every build runs under the pinned numerics
(``bench.runtime.numerics``) in its own spawned process, so the folder does not depend on how many were built side by
side.
Verifying rebuilds the same recipes in a scratch cache and compares weight hashes; on a mismatch it reports the
largest absolute weight difference, which tells a different kernel path (about 1e-7 relative after the first step,
amplified by training) from a different recipe (order-one differences).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from safetensors.torch import load_file

from bench.data.tasks import load_task
from bench.models.tiny import BUILD_ENV, get_model, get_tokenizer, shipped_dir, tokenizer_name
from bench.runtime.logs import quiet


@dataclass(frozen=True)
class Comparison:
    name: str
    shipped: str
    built: str
    max_abs_diff: float

    @property
    def equal(self) -> bool:
        return self.shipped == self.built


def _build_one(task: str, split: str, kind: str, replicate: int, cache: str) -> str:
    os.environ[BUILD_ENV] = "1"
    os.environ["UBENCH_CACHE"] = cache
    quiet()
    return str(get_model(load_task(task, split), kind, replicate=replicate).path)


def build(task: str, split: str, seeds: Sequence[int], cache: Path, jobs: int = 2) -> list[Path]:
    """Build the tokenizer, then every (kind, seed) model of (task, split) into ``cache`` with ``jobs`` processes;
    returns the built folders (tokenizer first)."""
    os.environ[BUILD_ENV] = "1"
    os.environ["UBENCH_CACHE"] = str(cache)
    data = load_task(task, split)
    get_tokenizer(data)
    folders = [cache / "models" / tokenizer_name(data)]
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_build_one, task, split, kind, seed, str(cache))
                   for seed in seeds for kind in ("target", "oracle")]
        folders += [Path(f.result()) for f in futures]
    return folders


def ship(task: str, split: str, seeds: Sequence[int], jobs: int = 2) -> list[Path]:
    """Build into a scratch cache and copy each folder (weights, tokenizer, ``build.json``) into the task family's
    shipped checkpoints, replacing an older copy of the same name."""
    target_dir = shipped_dir(load_task(task, split))
    target_dir.mkdir(parents=True, exist_ok=True)
    shipped = []
    with tempfile.TemporaryDirectory(prefix="ubench-ship-") as scratch:
        for folder in build(task, split, seeds, Path(scratch), jobs):
            dest = target_dir / folder.name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(folder, dest)
            shipped.append(dest)
    return shipped


def _state(folder: Path) -> dict:
    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def compare(shipped: Path, built: Path) -> Comparison:
    """Weight hashes of a shipped and a local build of one model, and the largest absolute difference of any weight
    (0.0 when equal; inf when the tensors' names or shapes differ)."""
    info = [json.loads((folder / "build.json").read_text()) for folder in (shipped, built)]
    left, right = _state(shipped), _state(built)
    if set(left) != set(right) or any(left[k].shape != right[k].shape for k in left):
        diff = float("inf")
    else:
        diff = max((float((left[k] - right[k]).abs().max()) for k in left if left[k].numel()), default=0.0)
    return Comparison(shipped.name, info[0].get("weights_sha256", ""), info[1].get("weights_sha256", ""), diff)


def verify(task: str, split: str, seeds: Sequence[int], jobs: int = 2) -> list[Comparison]:
    """Rebuild every shipped model of (task, split, seeds) locally and compare it with the shipped one."""
    home = shipped_dir(load_task(task, split))
    with tempfile.TemporaryDirectory(prefix="ubench-verify-") as scratch:
        return [compare(home / folder.name, folder) for folder in build(task, split, seeds, Path(scratch), jobs)
                if (folder / "build.json").exists() and (home / folder.name).exists()
                and not folder.name.startswith("tokenizer-")]
