"""Loading a task's data from the Hugging Face hub at a pinned revision, or from a local mirror of the same files.

Real tasks (TOFU, MUSE, WMDP) name a hub dataset, its pinned ``revision`` and the files or configs they read. The
loader tries, in order:

1. a local mirror: ``$UBENCH_HUB_MIRROR/<dataset id>/<file>`` (the repository's own file layout, e.g.
   ``locuslab/TOFU/forget10_perturbed.json``), which is how the tests run every loader with the hub unreachable,
   and how a cluster without internet access serves a copied dataset;
2. ``datasets.load_dataset(dataset, name=config, revision=revision)``, which also serves the local datasets cache
   (``HF_DATASETS_OFFLINE=1``).

``bench.data.hub_datasets`` holds the two loaders (``load_hub_json``, ``load_hub_split``); this module, the mirror and
the error, loads no ``datasets`` (a model preset's files use the mirror too).

When neither works the error is one line naming the dataset, the config (and split) and revision, and how to get
access.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def unavailable(source: str, dataset: str, where: str, revision: str, file: str,
                 exc: Exception) -> HubUnavailableError:
    """The one-line error of a dataset that neither the hub (or its cache) nor the mirror has."""
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return HubUnavailableError(
        f"{source}: cannot load hub dataset {dataset} ({where}, revision {revision[:12]}): {reason}. "
        f"Get access with `huggingface-cli login` (accept the dataset's terms on its hub page if it is gated) "
        f"and a network connection, or copy the repository's files to ${MIRROR_ENV}/{dataset}/ "
        f"(e.g. {file})")
