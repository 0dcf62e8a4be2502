"""The code a process runs: the git commit of the checkout the ``bench`` package is imported from, and whether
that checkout has changes not committed (what ``ubench --version`` prints and every run record's ``env`` stores)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache

from bench.runtime.paths import REPO_ROOT


@dataclass(frozen=True)
class GitState:
    """``commit``: ``git rev-parse HEAD`` ("" outside a checkout or without git); ``dirty``: whether
    ``git status --porcelain`` lists any file (a change to a tracked file, or a file git neither tracks nor ignores)."""

    commit: str = ""
    dirty: bool = False


def _git(*args: str) -> str:
    """The stripped output of ``git ARGS`` in the checkout, "" when git is missing or fails."""
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@cache
def git_state() -> GitState:
    """The checkout's ``GitState``; an installed package (no ``.git`` next to ``bench/``) has none, even inside
    another repository's folder."""
    if not (REPO_ROOT / ".git").exists():  # a folder in a checkout, a file in a git worktree
        return GitState()
    return GitState(_git("rev-parse", "HEAD"), bool(_git("status", "--porcelain")))
