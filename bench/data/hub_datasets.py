"""A task's hub dataset at a pinned revision, or its copy in the local mirror (``bench.data.hub``).

``load_hub_json`` reads a config's ``train`` split (TOFU: one config per file); ``load_hub_split`` reads one named
split of a config (MUSE: configs ``raw``, ``knowmem``, ... with splits ``forget``, ``retain_qa``, ...), mirrored as
``$UBENCH_HUB_MIRROR/<dataset id>/<config>/<split>.json`` (JSON lines, one record per line, the hub's columns).
"""

from __future__ import annotations

from datasets import Dataset, load_dataset

from bench.data.hub import mirror_file, unavailable


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
        raise unavailable(source, dataset, f"config {config}", revision, file, exc) from exc


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
        raise unavailable(source, dataset, f"config {config}, split {split}", revision, file, exc) from exc
