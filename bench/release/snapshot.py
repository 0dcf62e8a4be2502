"""What a release of a board hashes: the board file and its canonical spec, submitted entries and plug-ins, task
digests, and every record the board reads, as its *evidence* (without timings and environment); the records as
stored go to ``provenance/``, outside the hash. See ``bench.release.bundle`` for the bundle's layout."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.board.format import REFERENCE_LABELS
from bench.data.tasks import read_task_config
from bench.grid.cells import BoardRecords, cell_search_id, read_board, trials_per_cell
from bench.models.presets import load_preset
from bench.run.origin import board_origins
from bench.run.references import REFERENCE_KINDS
from bench.runtime.records import ReferenceRecord, RunRecord, evidence
from bench.runtime.store import RESULT, Store, dumps
from bench.specs.board import LeaderboardSpec, load_submitted_entries, shown_name
from bench.specs.mapping import canonical_json

RELEASES = "releases"


PROVENANCE = "provenance/"
RUNS, REFS = RunRecord.FOLDER, ReferenceRecord.FOLDER


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_bytes(obj) -> bytes:
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
    origins: dict[str, dict] = field(default_factory=dict)  # method label -> origin (``bench.run.origin``)

    @property
    def listing(self) -> str:
        return "".join(f"{sha256_hex(self.files[path])}  {path}\n" for path in sorted(self.files))

    @property
    def content_hash(self) -> str:
        return sha256_hex(self.listing.encode())

    @property
    def version(self) -> str:
        return f"{self.board.version}+{self.content_hash[:10]}"


def releases_dir(board: LeaderboardSpec) -> Path:
    return board.out_dir / RELEASES


def _canonical_spec(board: LeaderboardSpec) -> dict:
    """The parsed board without machine-specific paths (``path``, and ``output``: where its tables are written;
    plug-in files become ``plugins/<name>``) and without ``keep_models`` (whether models are saved changes no
    number)."""
    spec = json.loads(canonical_json(board))
    spec.pop("path", None)
    spec.pop("output", None)
    spec.pop("keep_models", None)
    for task in spec.get("tasks", []):  # a task or model YAML file by its name, not its folder
        task["task"], task["model"] = shown_name(task["task"]), shown_name(task["model"])
    for method in spec.get("methods", []):
        if method.get("plugin"):
            method["plugin"] = f"plugins/{Path(method['plugin']).name}"
    plugins = spec.pop("plugins", None)  # absent when empty: a board without plug-ins keeps its release hash
    if plugins:
        spec["plugins"] = [f"plugins/{Path(p).name}" for p in plugins]
    return spec


def _add_record(snap: Snapshot, store: Store, kind: str, record_id: str) -> None:
    """A record's files into the snapshot: ``result.json`` as its evidence (hashed; ``bench.runtime.records.evidence``
    of the file as stored) and as stored (provenance), the other files byte for byte."""
    for name, data in store.record_files(kind, record_id).items():
        if name == RESULT:
            snap.provenance[f"{PROVENANCE}records/{kind}/{record_id}/{name}"] = data
            data = json_bytes(evidence(json.loads(data)))
        snap.files[f"records/{kind}/{record_id}/{name}"] = data


def snapshot(board: LeaderboardSpec, store: Store, records: BoardRecords | None = None) -> Snapshot:
    """Collect the hashed bundle files of ``board`` from ``store`` (reads only; writes nothing; ``records``: the
    board's records already read, ``bench.grid.cells.read_board``)."""
    records = records or read_board(board, store)
    files: dict[str, bytes] = {}
    snap = Snapshot(board, files)
    if board.path and Path(board.path).is_file():
        files["board/board.yaml"] = Path(board.path).read_bytes()
    files["board/spec.json"] = json_bytes(_canonical_spec(board))
    for entry_file, _ in load_submitted_entries(board.entries_dir):
        files[f"board/entries/{entry_file.name}"] = entry_file.read_bytes()
    for plugin in board.plugin_files:
        if Path(plugin).is_file():
            files[f"board/plugins/{Path(plugin).name}"] = Path(plugin).read_bytes()
    for task in board.tasks:
        config = read_task_config(task.task)
        item = {"task": shown_name(task.task), "split": task.split, "requests": task.requests,
                "model": shown_name(task.model), "name": config.name, "version": config.version, "ref": config.ref,
                "family": config.family, "digest": config.digest}
        if task.model:
            item["preset_digest"] = load_preset(task.model).digest
        snap.tasks.append(item)
        for kind in REFERENCE_KINDS:  # every replicate's references: each seed's cells are scored against its own
            for ref_id in records.reference_ids[(task.label, kind)]:
                snap.n_expected += 1
                if records.references[ref_id] is None:
                    snap.incomplete.append(f"{task.label}/{REFERENCE_LABELS[kind]}: missing ({ref_id})")
                else:
                    _add_record(snap, store, REFS, ref_id)
    files["tasks.json"] = json_bytes(snap.tasks)
    search_tier = trials_per_cell(board) > 1
    for cell, record in zip(records.cells, records.records):
        snap.n_expected += 1
        if record is None:
            snap.incomplete.append(f"{cell.name}: missing")
            continue
        _add_record(snap, store, RUNS, record.id)
        if search_tier:
            search_id = cell_search_id(cell, board)
            summary = store.search_bytes(search_id)
            if summary is not None:
                files[f"records/searches/{search_id}.json"] = summary
        if not record.ok:
            message = (record.error.message if record.error else "")[:80]
            snap.incomplete.append(f"{cell.name}: {record.status}" + (f" ({message})" if message else ""))
    envs: dict[str, dict] = {}
    stored = snap.provenance
    for path in sorted(stored):
        if path.endswith(f"/{RESULT}"):
            env = json.loads(stored[path]).get("env") or {}
            envs.setdefault(canonical_json(env), {"env": env, "records": []})["records"].append(
                "/".join(path.split("/")[2:4]))
    stored[f"{PROVENANCE}env.json"] = json_bytes(sorted(envs.values(), key=lambda e: e["records"][0]))
    snap.methods = list(dict.fromkeys(m.method for m in board.methods))
    snap.families = list(dict.fromkeys(t["family"] for t in snap.tasks))
    methods = {entry.display: entry.method for entry in board.methods}
    origins = board_origins(board, ((cell.method, record) for cell, record in zip(records.cells, records.records)))
    snap.origins = {label: {"method": methods[label], **origin.to_dict()} for label, origin in origins.items()}
    return snap
