"""Where things live: the checkout's task and leaderboard folders, the model cache and the result store."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # bench/
REPO_ROOT = PACKAGE_ROOT.parent


def tasks_dir() -> Path:
    """Declarative task YAMLs: ``$UBENCH_TASKS`` or ``<checkout>/tasks``."""
    return Path(os.environ.get("UBENCH_TASKS", REPO_ROOT / "tasks"))


def cache_dir() -> Path:
    """Built tokenizers, models and reference scores: ``$UBENCH_CACHE`` or ``<checkout>/.cache/ubench``."""
    return Path(os.environ.get("UBENCH_CACHE", REPO_ROOT / ".cache" / "ubench"))


def results_dir() -> Path:
    """Run records: ``$UBENCH_RESULTS`` or ``<checkout>/results``."""
    return Path(os.environ.get("UBENCH_RESULTS", REPO_ROOT / "results"))
