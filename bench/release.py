"""Citable leaderboard releases: ``ubench release BOARD`` freezes a board's current state into a content-hashed
bundle, ``ubench cite BOARD[@VERSION]`` prints BibTeX for it.

A release lives in ``<board out_dir>/releases/<version>/`` (``leaderboards/<name>/releases/7+3f2a9c1d0e/``):

- ``bundle.tar.gz``: every file below under one top folder ``<name>-<version>/``, written deterministically
  (sorted paths, mtime 0, uid/gid 0, no user names, mode 0644, gzip header without name or time), so the same
  inputs give the same bytes;
- ``manifest.json``: the version, the content hash and what it covers, every bundle file's sha256, the task
  digests, the budget tier, the run environments, the incomplete cells (``--allow-incomplete``), and, outside the
  hash, when it was made and with what (``created``, ``released_with``).

Bundle files (paths relative to the top folder):

- ``board/board.yaml`` (the YAML text as is), ``board/spec.json`` (the parsed canonical ``LeaderboardSpec``: tier
  resolved, submitted entries included, machine-specific paths removed), ``board/entries/*.yaml`` (entries added
  by ``ubench submit``) and ``board/plugins/*.py`` (their method files);
- ``tasks.json``: each task entry's name, version, family and digest (``TaskConfig.digest``), model preset digest;
- ``records/refs/<id>/...``, ``records/runs/<id>/...``: every record the board reads (the target and retain
  oracle references and each cell's run, or with a search tier the selected trial and ``records/searches/<id>.json``)
  with all their files: ``result.json``, ``spec.json``, ``per_item.jsonl``, ``geffect.jsonl``;
  in ``records/`` each ``result.json`` is the record's *evidence*: the stored record without its ``timings``, its
  ``env`` and any ``*_seconds`` field (``evidence``);
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
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.spec import LeaderboardSpec, SpecError, canonical_json, load_submitted_entries
from bench.store import Store, dumps

RELEASES = "releases"
MANIFEST = "manifest.json"
BUNDLE = "bundle.tar.gz"
TABLES = "tables/"
PROVENANCE = "provenance/"
UNHASHED = (TABLES, PROVENANCE)
# how `ubench reproduce` judges a rerun against this release (bench.reproduce); in the manifest, outside the hash
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
VOLATILE = ("timings", "env")  # record fields that say how long and where, not what


def evidence(record: dict) -> dict:
    """A record without ``VOLATILE`` top-level fields and without any ``*_seconds`` or ``*_gib`` (peak memory)
    field at any depth (the reference models' ``build.build_seconds``): what a rerun with the same seeds must
    reproduce."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith(("_seconds", "_gib"))}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip({k: v for k, v in record.items() if k not in VOLATILE})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(obj) -> bytes:
    return (dumps(obj) + "\n").encode()


@dataclass
class Snapshot:
    """The hashed part of a board's would-be release: bundle files by path, and what is missing or failed."""

    board: LeaderboardSpec
    files: dict[str, bytes]
    incomplete: list[str] = field(default_factory=list)
    provenance: dict[str, bytes] = field(default_factory=dict)  # bundled, not hashed
    n_expected: int = 0
    tasks: list[dict] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)

    @property
    def listing(self) -> str:
        return "".join(f"{_sha(self.files[path])}  {path}\n" for path in sorted(self.files))

    @property
    def content_hash(self) -> str:
        return _sha(self.listing.encode())

    @property
    def version(self) -> str:
        return f"{self.board.version}+{self.content_hash[:10]}"


def releases_dir(board: LeaderboardSpec) -> Path:
    return board.out_dir / RELEASES


def _canonical_spec(board: LeaderboardSpec) -> dict:
    """The parsed board without machine-specific paths (``path``, and ``output``: where its tables are written;
    plug-in files become ``plugins/<name>``)."""
    spec = json.loads(canonical_json(board))
    spec.pop("path", None)
    spec.pop("output", None)
    for method in spec.get("methods", []):
        if method.get("plugin"):
            method["plugin"] = f"plugins/{Path(method['plugin']).name}"
    return spec


def _add_record(snap: Snapshot, store: Store, kind: str, record_id: str) -> None:
    """A record's files into the snapshot: ``result.json`` as its evidence (hashed) and as stored (provenance),
    the other files byte for byte."""
    folder = store.folder(kind, record_id)
    for file in sorted(folder.iterdir()):
        if file.is_file() and not file.name.startswith("."):  # dot files: an atomic write in progress
            data = file.read_bytes()
            if file.name == "result.json":
                snap.provenance[f"{PROVENANCE}records/{kind}/{record_id}/result.json"] = data
                data = _json_bytes(evidence(json.loads(data)))
            snap.files[f"records/{kind}/{record_id}/{file.name}"] = data


def _search_file(cell, board: LeaderboardSpec, store: Store) -> Path | None:
    """The search summary a search-tier cell's record is selected from (``bench.leaderboard.cell_record``)."""
    from bench.control.search import search_id_of
    from bench.leaderboard import _search_args

    args = _search_args(cell, board)
    search_id = search_id_of(cell.spec.task, args["split"], args["method"], args["base_params"], args["budget"],
                             args["seed"], args["control"], args["n_trials"])
    path = store.root / "searches" / f"{search_id}.json"
    return path if path.is_file() else None


def snapshot(board: LeaderboardSpec, store: Store) -> Snapshot:
    """Collect the hashed bundle files of ``board`` from ``store`` (reads only; writes nothing)."""
    from bench.data.tasks import load_task, load_task_config
    from bench.leaderboard import REFERENCE_LABELS, cell_record, plan, trials_per_cell
    from bench.runner import REFERENCE_KINDS, reference_id

    cells = plan(board)
    files: dict[str, bytes] = {}
    snap = Snapshot(board, files)
    if board.path and Path(board.path).is_file():
        files["board/board.yaml"] = Path(board.path).read_bytes()
    files["board/spec.json"] = _json_bytes(_canonical_spec(board))
    for entry_file, _ in load_submitted_entries(board.entries_dir):
        files[f"board/entries/{entry_file.name}"] = entry_file.read_bytes()
    for method in board.methods:
        if method.plugin and Path(method.plugin).is_file():
            files[f"board/plugins/{Path(method.plugin).name}"] = Path(method.plugin).read_bytes()
    for task in board.tasks:
        config = load_task_config(task.task)
        item = {"task": task.task, "split": task.split, "requests": task.requests, "model": task.model,
                "name": config.name, "version": config.version, "ref": config.ref, "family": config.family,
                "digest": config.digest}
        data = load_task(task.task, task.split)
        preset = None
        if task.model:
            from bench.models.presets import apply_to_task, load_preset

            preset = load_preset(task.model)
            apply_to_task(preset, data)
            item["preset_digest"] = preset.digest
        snap.tasks.append(item)
        for kind in REFERENCE_KINDS:
            snap.n_expected += 1
            ref_id = reference_id(data, kind, preset)
            if store.load("refs", ref_id) is None:
                snap.incomplete.append(f"{task.label}/{REFERENCE_LABELS[kind]}: missing")
            else:
                _add_record(snap, store, "refs", ref_id)
    files["tasks.json"] = _json_bytes(snap.tasks)
    search_tier = trials_per_cell(board) > 1
    for cell in cells:
        snap.n_expected += 1
        record = cell_record(cell, board, store)
        if record is None:
            snap.incomplete.append(f"{cell.name}: missing")
            continue
        _add_record(snap, store, "runs", record["run_id"])
        if search_tier:
            summary = _search_file(cell, board, store)
            if summary is not None:
                files[f"records/searches/{summary.name}"] = summary.read_bytes()
        if record.get("status") != "ok":
            message = ((record.get("error") or {}).get("message") or "")[:80]
            snap.incomplete.append(f"{cell.name}: {record.get('status')}" + (f" ({message})" if message else ""))
    envs: dict[str, dict] = {}
    stored = snap.provenance
    for path in sorted(stored):
        if path.endswith("/result.json"):
            env = json.loads(stored[path]).get("env") or {}
            envs.setdefault(canonical_json(env), {"env": env, "records": []})["records"].append(
                "/".join(path.split("/")[2:4]))
    stored[f"{PROVENANCE}env.json"] = _json_bytes(sorted(envs.values(), key=lambda e: e["records"][0]))
    snap.methods = list(dict.fromkeys(m.method for m in board.methods))
    snap.families = list(dict.fromkeys(t["family"] for t in snap.tasks))
    return snap


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


def release_status(board: LeaderboardSpec, store: Store, snap: Snapshot | None = None) -> ReleaseStatus | None:
    manifests = read_manifests(board)
    if not manifests:
        return None
    snap = snap or snapshot(board, store)
    matching = [m for m in manifests if m["content_hash"] == snap.content_hash]
    if matching:
        return ReleaseStatus(matching[-1]["version"], True, snap.content_hash)
    return ReleaseStatus(manifests[-1]["version"], False, snap.content_hash)


def shared_board_path(board: LeaderboardSpec) -> str:
    """``board.path`` as text fit to share (board.md, board.html): relative to the repository root for a board of
    this checkout (``leaderboards/synthetic.yaml``), else the board file's name (relative to its own folder); never
    an absolute local path."""
    from bench.paths import REPO_ROOT

    path = Path(board.path).resolve()
    try:
        return path.relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return path.name


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
    from bench.citations import suite_version
    from bench.leaderboard import build_table, to_markdown
    from bench.runner import env_info

    snap = snapshot(board, store)
    if snap.incomplete and not allow_incomplete:
        shown = "; ".join(snap.incomplete[:3]) + ("; ..." if len(snap.incomplete) > 3 else "")
        raise SpecError(f"{board.path}: {len(snap.incomplete)} of {snap.n_expected} board entries are missing or "
                        f"not ok ({shown}); run them first, or release anyway with --allow-incomplete")
    folder = releases_dir(board) / snap.version
    if (folder / MANIFEST).is_file():
        return json.loads((folder / MANIFEST).read_text()), folder, False
    table = build_table(board, store)
    files = {**snap.files, **snap.provenance}
    files[TABLES + "board.md"] = to_markdown(board, table, plots=[], geffect_plots=[]).encode()
    files[TABLES + "board.csv"] = table.to_csv(index=False, float_format="%.6g").encode()
    bundle = _tar_gz(files, f"{board.name}-{snap.version}")
    manifest = {
        "format": FORMAT, "version": snap.version, "board": board.name, "board_version": board.version,
        "content_hash": snap.content_hash, "hash_covers": HASH_COVERS,
        "files": {path: {"sha256": _sha(files[path]), "bytes": len(files[path]), "hashed": not
                         path.startswith(UNHASHED)} for path in sorted(files)},
        "bundle": {"file": BUNDLE, "sha256": _sha(bundle), "bytes": len(bundle),
                   "top": f"{board.name}-{snap.version}"},
        "tasks": snap.tasks, "methods": snap.methods, "task_families": snap.families,
        "budget": {"tier": board.budget.tier, **dataclasses.asdict(board.budget)},
        "seeds": list(board.seeds), "env": json.loads(files[f"{PROVENANCE}env.json"]),
        "incomplete": snap.incomplete, "suite": {"name": "unlearning-bench", "version": suite_version()},
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
    if {p: _sha(d) for p, d in files.items()} != {p: f["sha256"] for p, f in manifest["files"].items()}:
        return False
    hashed = {p: d for p, d in files.items() if not p.startswith(UNHASHED)}
    listing = "".join(f"{_sha(hashed[p])}  {p}\n" for p in sorted(hashed))
    return _sha(listing.encode()) == manifest["content_hash"]


# --- BibTeX -----------------------------------------------------------------------------------------------------


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
    from bench.citations import (
        ENTRIES,
        METHOD_PAPERS,
        PROTOCOL_PAPERS,
        SUITE_AUTHOR,
        SUITE_URL,
        TASK_PAPERS,
        bibtex,
        method_paper_text,
        paper_entry,
        suite_entry,
    )

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
    keys: list[str] = list(PROTOCOL_PAPERS)
    comments: list[str] = []
    for method in methods:
        found = METHOD_PAPERS.get(method)
        if found:
            keys += found
        else:
            paper = method_paper_text(method)
            comments.append(f"% method {method}: no BibTeX entry" + (f" (paper: {paper})" if paper else ""))
    for family in families:
        found = TASK_PAPERS.get(family)
        if found:
            keys += found
        else:
            comments.append(f"% task family {family}: no BibTeX entry")
    lines.append("% protocol (control, G-effect), methods and tasks on the board: "
                 f"methods {', '.join(methods)}; task families {', '.join(families)}")
    lines += comments
    for k in dict.fromkeys(keys):
        if k in ENTRIES:
            lines += [paper_entry(k), ""]
    return "\n".join(lines).rstrip() + "\n"
