"""Citable leaderboard releases: ``ubench release BOARD`` freezes a board's current state into a content-hashed
bundle, ``ubench cite BOARD[@VERSION]`` prints BibTeX for it.

A release lives in ``<board out_dir>/releases/<version>/`` (``leaderboards/<name>/releases/7+3f2a9c1d0e/``):

- ``bundle.tar.gz``: every file below under one top folder ``<name>-<version>/``, written deterministically
  (sorted paths, mtime 0, uid/gid 0, no user names, mode 0644, gzip header without name or time), so the same
  inputs give the same bytes;
- ``manifest.json``: the version, the content hash and what it covers, every bundle file's sha256, the task
  digests, the budget tier, the run environments, the incomplete cells (``--allow-incomplete``), the ``origins``
  of the board's outside methods (label -> registered method, class version, package name and version or plug-in
  file name, and a submitted entry's paper, authors and BibTeX: ``bench.run.origin``; absent on a board of built-in
  methods only), and, outside the hash, when it was made and with what (``created``, ``released_with``).

Bundle files (paths relative to the top folder):

- ``board/board.yaml`` (the YAML text as is), ``board/spec.json`` (the parsed canonical ``LeaderboardSpec``: tier
  resolved, submitted entries included, machine-specific paths removed), ``board/entries/*.yaml`` (entries added
  by ``ubench submit``) and ``board/plugins/*.py`` (their method files);
- ``tasks.json``: each task entry's name, version, family and digest (``TaskConfig.digest``), model preset digest;
- ``records/refs/<id>/...``, ``records/runs/<id>/...``: every record the board reads (the target and retain
  oracle references of every replicate seed, and each cell's run, or with a search tier the selected trial and
  ``records/searches/<id>.json``) with all their files: ``result.json``, ``spec.json``, ``per_item.jsonl``,
  ``geffect.jsonl``;
  in ``records/`` each ``result.json`` is the record's *evidence*: the stored record without its ``timings``, its
  ``env`` and any ``*_seconds`` field (``bench.runtime.records.evidence``);
- ``provenance/records/<kind>/<id>/result.json``: the records exactly as stored (timings, env, git commit), and
  ``provenance/env.json``: the distinct run environments (python, torch, transformers, git commit, device) and which
  records ran in each;
- ``tables/board.md``, ``tables/board.csv``: the tables built from exactly these records (without plot links).

**Content hash** = sha256 of the listing ``<sha256 of file>  <path>\\n`` over every bundle file except ``tables/``
and ``provenance/``, sorted by path (the format of ``sha256sum``). It covers what determines the numbers and the
numbers themselves, not how long they took or where they ran: a rerun of the board that reproduces every number
(the same seeds on the same kind of machine do, byte for byte) is the *same* release, so ``board.md`` of a cold
rerun still says "Release v" and a reproduction can be checked by its version; a single changed number gives a new
version. Re-releasing unchanged records gives the same hash wherever the store and the board file live. The tables
are left out because they are derived from the hashed files (``board.md`` names the release). The creation time
and the release-time environment are in the manifest, outside the hash. Version = ``<board version>+<first 10 hex
digits of the content hash>``.

Verify a bundle with standard tools::

    mkdir x && tar xzf bundle.tar.gz -C x && cd x/* && \\
    find . -type f ! -path './tables/*' ! -path './provenance/*' -printf '%P\\n' | LC_ALL=C sort | \\
    xargs sha256sum | sha256sum
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.board.markdown import to_markdown
from bench.board.table import build_table
from bench.grid.cells import BoardRecords, read_board
from bench.release.citations import suite_version
from bench.release.snapshot import PROVENANCE, RELEASES, Snapshot, releases_dir, sha256_hex, snapshot
from bench.run.record import env_info
from bench.runtime.paths import REPO_ROOT
from bench.runtime.store import Store, dumps
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

MANIFEST = "manifest.json"
BUNDLE = "bundle.tar.gz"
TABLES = "tables/"
UNHASHED = (TABLES, PROVENANCE)
# how `ubench reproduce` judges a rerun against this release (bench.release.reproduce); in the manifest, outside the
# hash
TOLERANCE = {
    "cell": "identical | printed (equal at the board's printed precision) | within (inside the released record's "
            "95% item-bootstrap interval) | differs",
    "row": "the rerun mean over seeds inside the released row's 95% hierarchical bootstrap interval (seeds, items)",
    "conclusions": "the sort column's best row and the rows statistically tied with it (paired hierarchical "
                   "bootstrap, 95%) are the same sets; exit 1 otherwise",
}
FORMAT = 2
HASH_COVERS = ("sha256 of the sha256sum-style listing '<sha256>  <path>\\n' of every bundle file except tables/ "
               "and provenance/, sorted by path: the board YAML and its canonical spec, submitted entries and "
               "plug-ins, task digests, and every record's evidence (result.json without timings, env and "
               "*_seconds fields; per_item.jsonl and geffect.jsonl byte for byte)")


def _tar_gz(files: dict[str, bytes], top: str) -> bytes:
    """A gzipped tar of ``files`` under ``top/`` whose bytes depend on the files only."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def read_manifests(board: LeaderboardSpec) -> list[dict]:
    """The board's release manifests, oldest first (by ``created``, then version); unreadable ones skipped."""
    folder = releases_dir(board)
    manifests = []
    if folder.is_dir():
        for path in sorted(folder.glob(f"*/{MANIFEST}")):
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(manifest, dict) and manifest.get("version") and manifest.get("content_hash"):
                manifests.append(manifest)
    return sorted(manifests, key=lambda m: (str(m.get("created", "")), str(m["version"])))


def load_manifest(board: LeaderboardSpec, version: str) -> dict:
    for manifest in read_manifests(board):
        if manifest["version"] == version:
            return manifest
    known = ", ".join(m["version"] for m in read_manifests(board)) or "none; run ubench release first"
    raise SpecError(f"{board.path}: no release {version!r} of board {board.name} (releases: {known})")


@dataclass(frozen=True)
class ReleaseStatus:
    """Where the board's current state stands against its releases: ``version`` is the release matching the
    current content hash (``current``) or else the latest release (``current`` False); None without releases."""

    version: str
    current: bool
    content_hash: str


def release_status(board: LeaderboardSpec, store: Store, snap: Snapshot | None = None,
                   records: BoardRecords | None = None) -> ReleaseStatus | None:
    """The release the board's current state is (``records``: the board's records already read)."""
    manifests = read_manifests(board)
    if not manifests:
        return None
    snap = snap or snapshot(board, store, records)
    matching = [m for m in manifests if m["content_hash"] == snap.content_hash]
    if matching:
        return ReleaseStatus(matching[-1]["version"], True, snap.content_hash)
    return ReleaseStatus(manifests[-1]["version"], False, snap.content_hash)


def shared_path(board: LeaderboardSpec, path: str | Path) -> str:
    """``path`` (a file of ``board``: the board file, a release bundle) as text fit to share (board.md, board.html,
    BibTeX): relative to the repository root for a file of this checkout (``leaderboards/synthetic.yaml``), else
    relative to the board file's folder (``mini/releases/1+3f2a9c1d0e/bundle.tar.gz``), else its name; never an
    absolute local path."""
    path = Path(path).resolve()
    for root in (REPO_ROOT, Path(board.path).parent):
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def shared_board_path(board: LeaderboardSpec) -> str:
    """``board.path`` as text fit to share (``shared_path``): ``leaderboards/synthetic.yaml`` for a board of this
    checkout, else the board file's name."""
    return shared_path(board, board.path)


def release_line(board: LeaderboardSpec, store: Store, status: ReleaseStatus | None = None) -> str:
    """The markdown line ``board.md`` carries under its title: the release the current records are, or the
    unreleased changes since the latest release; "" for a board without releases (its tables are unchanged).
    The board file is named by ``shared_board_path``."""
    status = status or release_status(board, store)
    if status is None:
        return ""
    path = shared_board_path(board)
    if status.current:
        return (f"**Release `{status.version}`** (content hash `sha256:{status.content_hash}`; frozen in "
                f"`{RELEASES}/{status.version}/`; cite with `ubench cite {path}@{status.version}`).")
    return (f"**Unreleased changes since release `{status.version}`**: the board or its stored records differ from "
            f"that release (`ubench release {path}` freezes the current state).")


def release(board: LeaderboardSpec, store: Store, allow_incomplete: bool = False) -> tuple[dict, Path, bool]:
    """Freeze ``board`` into ``releases/<version>/``; return (manifest, folder, created). A board with missing or
    failed cells raises ``SpecError`` (nothing written) unless ``allow_incomplete``; an existing release of the
    same content is returned with ``created`` False and nothing written."""
    records = read_board(board, store)
    snap = snapshot(board, store, records)
    if snap.incomplete and not allow_incomplete:
        shown = "; ".join(snap.incomplete[:3]) + ("; ..." if len(snap.incomplete) > 3 else "")
        raise SpecError(f"{board.path}: {len(snap.incomplete)} of {snap.n_expected} board entries are missing or "
                        f"not ok ({shown}); run them first, or release anyway with --allow-incomplete")
    folder = releases_dir(board) / snap.version
    if (folder / MANIFEST).is_file():
        return json.loads((folder / MANIFEST).read_text()), folder, False
    table = build_table(board, store, records)
    files = {**snap.files, **snap.provenance}
    files[TABLES + "board.md"] = to_markdown(board, table, plots=[], geffect_plots=[]).encode()
    files[TABLES + "board.csv"] = table.to_csv(index=False, float_format="%.6g").encode()
    bundle = _tar_gz(files, f"{board.name}-{snap.version}")
    manifest = {
        "format": FORMAT, "version": snap.version, "board": board.name, "board_version": board.version,
        "content_hash": snap.content_hash, "hash_covers": HASH_COVERS,
        "files": {path: {"sha256": sha256_hex(files[path]), "bytes": len(files[path]), "hashed": not
                         path.startswith(UNHASHED)} for path in sorted(files)},
        "bundle": {"file": BUNDLE, "sha256": sha256_hex(bundle), "bytes": len(bundle),
                   "top": f"{board.name}-{snap.version}"},
        "tasks": snap.tasks, "methods": snap.methods, "task_families": snap.families,
        "budget": {"tier": board.budget.tier, **dataclasses.asdict(board.budget)},
        "seeds": list(board.seeds), "env": json.loads(files[f"{PROVENANCE}env.json"]),
        "incomplete": snap.incomplete, "suite": {"name": "unlearning-bench", "version": suite_version()},
        **({"origins": snap.origins} if snap.origins else {}),  # outside methods: no key on a built-in board
        # not hashed: when and with what the release was made
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "released_with": env_info(), "tolerance": TOLERANCE,
    }
    parent = releases_dir(board)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{snap.version}.", dir=parent))
    try:
        (staging / BUNDLE).write_bytes(bundle)
        (staging / MANIFEST).write_text(dumps(manifest) + "\n")
        for path in staging.iterdir():
            os.chmod(path, 0o644)
        os.chmod(staging, 0o755)
        os.replace(staging, folder)  # the release appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest, folder, True


def read_bundle(path: Path) -> dict[str, bytes]:
    """The files of a bundle by path below its top folder (for checks and tests)."""
    out = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name.split("/", 1)[1]] = tar.extractfile(member).read()
    return out


def verify(folder: Path) -> bool:
    """Whether a release folder's bundle matches its manifest (file hashes and content hash)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    files = read_bundle(folder / BUNDLE)
    if {p: sha256_hex(d) for p, d in files.items()} != {p: f["sha256"] for p, f in manifest["files"].items()}:
        return False
    hashed = {p: d for p, d in files.items() if not p.startswith(UNHASHED)}
    listing = "".join(f"{sha256_hex(hashed[p])}  {p}\n" for p in sorted(hashed))
    return sha256_hex(listing.encode()) == manifest["content_hash"]


