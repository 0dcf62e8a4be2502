"""Loading a task's data from the Hugging Face hub at a pinned revision, or from a local mirror of the same files.

Real tasks (TOFU, MUSE, WMDP) name a hub dataset, its pinned ``revision`` and the files or configs they read. The
loader tries, in order:

1. a local mirror: ``$UBENCH_HUB_MIRROR/<dataset id>/<file>`` (the repository's own file layout, e.g.
   ``locuslab/TOFU/forget10_perturbed.json``), which is how the tests run every loader with the hub unreachable,
   and how a cluster without internet access serves a copied dataset;
2. ``datasets.load_dataset(dataset, name=config, revision=revision)``, which also serves the local datasets cache
   (``HF_DATASETS_OFFLINE=1``).

``load_hub_json`` reads a config's ``train`` split (TOFU: one config per file); ``load_hub_split`` reads one named
split of a config (MUSE: configs ``raw``, ``knowmem``, ... with splits ``forget``, ``retain_qa``, ...), mirrored as
``$UBENCH_HUB_MIRROR/<dataset id>/<config>/<split>.json`` (JSON lines, one record per line, the hub's columns).

When neither works the error is one line naming the dataset, the config (and split) and revision, and how to get
access.
"""

from __future__ import annotations

import os
from pathlib import Path

from datasets import Dataset, load_dataset

MIRROR_ENV = "UBENCH_HUB_MIRROR"


class HubUnavailableError(RuntimeError):
    """A task's hub dataset can neither be downloaded nor found in a cache or mirror."""


def mirror_file(dataset: str, file: str) -> Path | None:
    """The mirrored copy of ``file`` of hub dataset ``dataset``, or None (no mirror set, or no such file)."""
    root = os.environ.get(MIRROR_ENV)
    if not root:
        return None
    path = Path(root) / dataset / file
    return path if path.is_file() else None


def load_hub_json(dataset: str, config: str, revision: str, source: str, file: str | None = None) -> Dataset:
    """The ``train`` split of ``config`` of ``dataset`` at ``revision``; ``file`` (default ``<config>.json``) is the
    JSON / JSON-lines file of that config in the repository, used for the mirror."""
    file = file or f"{config}.json"
    local = mirror_file(dataset, file)
    if local is not None:
        return load_dataset("json", data_files=str(local), split="train")
    try:
        return load_dataset(dataset, name=config, revision=revision, split="train")
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (connection, gated, not found, offline)
        raise _unavailable(source, dataset, f"config {config}", revision, file, exc) from exc


def load_hub_split(dataset: str, config: str, split: str, revision: str, source: str,
                   file: str | None = None) -> Dataset:
    """Split ``split`` of config ``config`` of ``dataset`` at ``revision``: the mirror's ``file`` (default
    ``<config>/<split>.json``, JSON lines) when there is one, else
    ``datasets.load_dataset(dataset, name=config, split=split, revision=revision)``."""
    file = file or f"{config}/{split}.json"
    local = mirror_file(dataset, file)
    if local is not None:
        return load_dataset("json", data_files=str(local), split="train")
    try:
        return load_dataset(dataset, name=config, split=split, revision=revision)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (connection, gated, not found, offline)
        raise _unavailable(source, dataset, f"config {config}, split {split}", revision, file, exc) from exc


def _unavailable(source: str, dataset: str, where: str, revision: str, file: str,
                 exc: Exception) -> HubUnavailableError:
    """The one-line error of a dataset that neither the hub (or its cache) nor the mirror has."""
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return HubUnavailableError(
        f"{source}: cannot load hub dataset {dataset} ({where}, revision {revision[:12]}): {reason}. "
        f"Get access with `huggingface-cli login` (accept the dataset's terms on its hub page if it is gated) "
        f"and a network connection, or copy the repository's files to ${MIRROR_ENV}/{dataset}/ "
        f"(e.g. {file})")
