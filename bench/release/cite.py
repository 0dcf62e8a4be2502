"""``ubench cite BOARD[@VERSION]``: BibTeX for the suite, a board release (or its current unreleased state), the
control and G-effect protocol papers, and the papers of the board's methods and task families."""

from __future__ import annotations

import re
from pathlib import Path

from bench.release.bundle import BUNDLE, load_manifest, release_status
from bench.release.citations import (
    PROTOCOL_PAPERS,
    SUITE_AUTHOR,
    SUITE_URL,
    bibtex,
    collect,
    family_papers,
    method_paper_text,
    method_papers,
    paper_entry,
    suite_entry,
)
from bench.release.snapshot import releases_dir, snapshot
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec


def split_board_arg(arg: str) -> tuple[str, str | None]:
    """``BOARD[@VERSION]``: a path that exists is a board even if it contains ``@``."""
    if Path(arg).exists() or "@" not in arg:
        return arg, None
    path, _, version = arg.rpartition("@")
    return path, version or None


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def cite(board: LeaderboardSpec, store: Store, version: str | None = None) -> str:
    """BibTeX: the suite, the board version (a release, or the current unreleased state with its content hash),
    the protocol papers, and the papers of the board's methods and task families (a ``%`` comment for those
    without an entry)."""
    if version is not None:
        manifest = load_manifest(board, version)
        released, content_hash, methods, families = True, manifest["content_hash"], manifest["methods"], \
            manifest["task_families"]
        tier, board_version, incomplete = manifest["budget"].get("tier"), manifest["board_version"], \
            manifest.get("incomplete") or []
    else:
        snap = snapshot(board, store)
        status = release_status(board, store, snap)
        released = bool(status and status.current)
        version = status.version if released else snap.version
        content_hash, methods, families = snap.content_hash, snap.methods, snap.families
        tier, board_version, incomplete = board.budget.tier, board.version, snap.incomplete
    where = f"{releases_dir(board)}/{version}/{BUNDLE}"
    if released:
        key = f"ubench_{_key(board.name)}_{_key(version)}"
        title = f"unlearning-bench leaderboard {board.name}, release {version}"
        note = (f"Board version {board_version}, budget tier {tier or 'custom'}; content hash sha256:{content_hash}; "
                f"bundle {where}" + (f"; {len(incomplete)} entries missing or not ok" if incomplete else ""))
    else:
        key = f"ubench_{_key(board.name)}_{_key(board_version)}_unreleased"
        title = f"unlearning-bench leaderboard {board.name}, unreleased state {version}"
        note = (f"UNRELEASED: board version {board_version}, budget tier {tier or 'custom'}; current content hash "
                f"sha256:{content_hash}; run ubench release to freeze a citable version")
    lines = [f"% unlearning-bench: BibTeX for leaderboard {board.name} "
             f"{'release' if released else 'unreleased state'} {version} (ubench cite)",
             "", suite_entry(), "",
             bibtex("misc", key, {"author": SUITE_AUTHOR, "title": title, "version": version,
                                  "howpublished": f"\\url{{{SUITE_URL}}}", "note": note}), ""]
    papers = list(PROTOCOL_PAPERS)
    comments: list[str] = []
    for method in methods:
        found = method_papers(method)
        if found:
            papers += found
        else:
            paper = method_paper_text(method)
            comments.append(f"% method {method}: no BibTeX entry" + (f" (paper: {paper})" if paper else ""))
    for family in families:
        found = family_papers(family)
        if found:
            papers += found
        else:
            comments.append(f"% task family {family}: no BibTeX entry")
    lines.append("% protocol (control, G-effect), methods and tasks on the board: "
                 f"methods {', '.join(methods)}; task families {', '.join(families)}")
    lines += comments
    for paper in collect(papers).values():
        lines += [paper_entry(paper), ""]
    return "\n".join(lines).rstrip() + "\n"
