"""``ubench cite BOARD[@VERSION]``: BibTeX for the suite, a board release (or its current unreleased state), the
control and G-effect protocol papers, and the papers of the board's methods and task families."""

from __future__ import annotations

import re
from pathlib import Path

from bench.release.bundle import BUNDLE, load_manifest, release_status, shared_path
from bench.release.citations import (
    PROTOCOL_PAPERS,
    SUITE_AUTHOR,
    SUITE_URL,
    bibtex,
    collect,
    family_papers,
    method_paper_text,
    method_papers,
    option_papers,
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


def _board_entry(board: LeaderboardSpec, store: Store, version: str | None) -> tuple[str, dict]:
    """The ``@misc`` entry of the board version (a release, or the current unreleased state with its content hash)
    and what the rest of the output needs: ``version``, ``released``, ``methods``, ``families``, ``origins``."""
    if version is not None:
        manifest = load_manifest(board, version)
        facts = {"released": True, "content_hash": manifest["content_hash"], "methods": manifest["methods"],
                 "families": manifest["task_families"], "origins": manifest.get("origins") or {},
                 "tier": manifest["budget"].get("tier"), "board_version": manifest["board_version"],
                 "incomplete": manifest.get("incomplete") or []}
    else:
        snap = snapshot(board, store)
        status = release_status(board, store, snap)
        released = bool(status and status.current)
        version = status.version if released else snap.version
        facts = {"released": released, "content_hash": snap.content_hash, "methods": snap.methods,
                 "families": snap.families, "origins": snap.origins, "tier": board.budget.tier,
                 "board_version": board.version, "incomplete": snap.incomplete}
    facts["version"] = version
    tier, board_version, content_hash = facts["tier"] or "custom", facts["board_version"], facts["content_hash"]
    if facts["released"]:
        key = f"ubench_{_key(board.name)}_{_key(version)}"
        title = f"unlearning-bench leaderboard {board.name}, release {version}"
        incomplete = facts["incomplete"]
        where = shared_path(board, releases_dir(board) / version / BUNDLE)
        note = (f"Board version {board_version}, budget tier {tier}; content hash sha256:{content_hash}; "
                f"bundle {where}" + (f"; {len(incomplete)} entries missing or not ok" if incomplete else ""))
    else:
        key = f"ubench_{_key(board.name)}_{_key(board_version)}_unreleased"
        title = f"unlearning-bench leaderboard {board.name}, unreleased state {version}"
        note = (f"UNRELEASED: board version {board_version}, budget tier {tier}; current content hash "
                f"sha256:{content_hash}; run ubench release to freeze a citable version")
    entry = bibtex("misc", key, {"author": SUITE_AUTHOR, "title": title, "version": version,
                                 "howpublished": f"\\url{{{SUITE_URL}}}", "note": note})
    return entry, facts


def _origin_comment(label: str, origin: dict) -> str:
    """One ``%`` line on a board entry's origin: method, class version, package or plug-in file, paper, authors."""
    source = (f"package {origin['package']} {origin.get('package_version') or ''}".rstrip() if origin.get("package")
              else f"plug-in file {origin['plugin']}" if origin.get("plugin") else "")
    parts = [f"version {origin.get('version') or '?'}", source,
             f"paper: {origin['paper']}" if origin.get("paper") else "",
             f"authors: {', '.join(origin['authors'])}" if origin.get("authors") else ""]
    return f"% method {origin.get('method', '?')} as {label!r}: " + "; ".join(p for p in parts if p)


def submitted_citations(origins: dict[str, dict]) -> list[str]:
    """Per board entry with an origin (``bench.run.origin``): its ``%`` line and its entry's BibTeX as submitted
    (each text once)."""
    lines: list[str] = []
    seen: set[str] = set()
    for label, origin in origins.items():
        lines.append(_origin_comment(label, origin))
        citation = (origin.get("citation") or "").strip()
        if citation and citation not in seen:
            seen.add(citation)
            lines += [citation, ""]
    return lines


def cite(board: LeaderboardSpec, store: Store, version: str | None = None) -> str:
    """BibTeX: the suite, the board version (a release, or the current unreleased state with its content hash),
    the protocol papers, the papers of the board's methods, of the objective options its entries switch on (GRU,
    SAM) and of its task families (a ``%`` comment for those without an entry), and the BibTeX of each submitted
    entry (``ubench submit``'s ``citation``) after a ``%`` line on its origin. No local path: the bundle is named
    relative to the checkout or the board file."""
    board_entry, facts = _board_entry(board, store, version)
    methods, families, origins = facts["methods"], facts["families"], facts["origins"]
    lines = [f"% unlearning-bench: BibTeX for leaderboard {board.name} "
             f"{'release' if facts['released'] else 'unreleased state'} {facts['version']} (ubench cite)",
             "", suite_entry(), "", board_entry, ""]
    papers = list(PROTOCOL_PAPERS)
    comments: list[str] = []
    cited = {origin.get("method") for origin in origins.values() if origin.get("citation")}
    for method in methods:
        found = method_papers(method)
        papers += found
        if not found and method not in cited:
            paper = method_paper_text(method)
            comments.append(f"% method {method}: no BibTeX entry" + (f" (paper: {paper})" if paper else ""))
    for entry in board.methods:
        papers += option_papers(entry.params)  # GRU, SAM: options of any method
    for family in families:
        found = family_papers(family)
        papers += found
        if not found:
            comments.append(f"% task family {family}: no BibTeX entry")
    lines.append("% protocol (control, G-effect), methods and tasks on the board: "
                 f"methods {', '.join(methods)}; task families {', '.join(families)}")
    lines += comments
    for paper in collect(papers).values():
        lines += [paper_entry(paper), ""]
    lines += submitted_citations(origins)
    return "\n".join(lines).rstrip() + "\n"
