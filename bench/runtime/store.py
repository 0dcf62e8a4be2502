"""The result store: one folder per content-addressed record, every file written atomically.

``<root>/runs/<run_id>/`` holds ``spec.json``, ``per_item.jsonl``, any extra files (``geffect.jsonl``) and, written
last, ``result.json``: a record exists iff its ``result.json`` does, so a crash mid-write leaves no record (and a
rerun redoes it). Reference records (the target and the retain oracle evaluated before any unlearning) live under
``<root>/refs/<ref_id>/``. Runs are keyed by run id, not by board, so boards that share a cell share its record.
A calibrated search's summary is ``<root>/searches/<search_id>.json``; a cell a run is computing right now is claimed in
``<root>/claims/<run_id>.json`` (``bench.runtime.claims``). Records are typed (``bench.runtime.records``):
``load`` migrates a stored record of any earlier schema on read, ``write`` writes the current one. No other module
builds a path into the store.

**Faults.** Each file is written to a temporary file in the same folder (``.<name>.<random>.tmp``), fsynced and
renamed into place (atomic on POSIX), so a reader never sees half a file. A record's files are written as one group
under an exclusive ``fcntl.flock`` on ``<folder>/.lock``: ``result.json`` is removed first, the other files are
written, files of an earlier version that the new one lacks are removed, and ``result.json`` comes last. Two
processes writing the same record (two runs of one spec, ``--rerun`` beside a run) therefore never interleave:
the folder always holds the files of one writer, the last one (without the lock, writer A's ``per_item.jsonl``
could sit next to writer B's ``result.json``, which differ when one run failed and the other did not). A process
killed mid-write (kill -9) leaves at most a temporary file and no ``result.json``; the next writer of that record
removes the leftovers under the lock. Readers take no lock: they read ``result.json`` whole, old or new.
``flock`` is advisory and works across processes on one machine (and on most network file systems that
support it: NFSv4, Lustre with ``flock``); on a file system without it the lock is skipped and the atomic renames
alone still keep every file whole.

A ``result.json`` that cannot be read (truncated, not JSON, not UTF-8, a wrong shape, an unknown schema) is reported by
``CorruptRecordWarning`` naming the file, in one line, and treated as absent: the board skips it and a run redoes
it. ``report_corrupt_records`` turns those warnings into one ``ubench: warning:`` line per file on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from bench.runtime.ranks import is_main
from bench.runtime.records import (
    Record,
    RecordFormatError,
    ReferenceRecord,
    RunRecord,
    SearchRecord,
    record_from_json,
)

try:
    import fcntl
except ImportError:  # not POSIX: atomic renames only
    fcntl = None

LOCK_NAME = ".lock"
RESULT = "result.json"
SPEC = "spec.json"
PER_ITEM = "per_item.jsonl"
GEFFECT_FILE = "geffect.jsonl"
MODELS = "models"  # runs/<id>/models/<kind>/: a run's kept models (``save_pretrained`` folders), on request
SEARCHES = "searches"
CLAIMS = "claims"
TMP_SUFFIX = ".tmp"


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and tables are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=True)


class CorruptRecordWarning(UserWarning):
    """A stored file that cannot be read: the message is one line starting with the file's path."""


@contextlib.contextmanager
def record_lock(folder: Path) -> Iterator[bool]:
    """An exclusive ``flock`` on ``folder/.lock`` (created if missing; never deleted, so every writer locks the same
    inode). Yields whether the lock is held: False where the file system does not support ``flock``."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield False
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # e.g. ENOLCK on a file system without flock
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Store:
    """The result store (see the module docstring). It alone knows where a record's files are: the other modules ask
    it for typed records (``load``, ``load_search``), per-item rows, G-effect measurements and a record's files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, kind: str, record_id: str) -> Path:
        """The folder of record ``record_id`` of ``kind`` (``runs`` or ``refs``): where it is, to name in a message."""
        return self.root / kind / record_id

    def load(self, kind: str, record_id: str) -> Record | None:
        """The typed record (``RunRecord`` under ``runs``, ``ReferenceRecord`` under ``refs``), migrated to the current
        schema, or None when absent. A corrupt file is reported by name (``CorruptRecordWarning``, one line) and
        treated as absent."""
        path = self.folder(kind, record_id) / RESULT
        data = _read_json(path, "record")
        if data is _ABSENT:
            return None
        try:
            return record_from_json(kind, data, record_id)
        except RecordFormatError as exc:
            warnings.warn(f"{path}: malformed record skipped ({_one_line(exc)})", CorruptRecordWarning, stacklevel=2)
            return None

    def load_run(self, run_id: str) -> RunRecord | None:
        """``load`` of a run record."""
        return self.load(RunRecord.FOLDER, run_id)  # type: ignore[return-value]

    def load_reference(self, ref_id: str) -> ReferenceRecord | None:
        """``load`` of a reference record."""
        return self.load(ReferenceRecord.FOLDER, ref_id)  # type: ignore[return-value]

    def has_per_item(self, kind: str, record_id: str) -> bool:
        return (self.folder(kind, record_id) / PER_ITEM).exists()

    def per_item(self, kind: str, record_id: str) -> list[dict]:
        """The per-item rows of a record (``per_item.jsonl``)."""
        path = self.folder(kind, record_id) / PER_ITEM
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def measurements(self, run_id: str) -> list[dict]:
        """The G-effect measurements of a run (``geffect.jsonl``: one per recorded step), in step order; empty when
        the run has none. A malformed file is named in a warning and treated as empty."""
        path = self.folder(RunRecord.FOLDER, run_id) / GEFFECT_FILE
        if not path.is_file():
            return []
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            warnings.warn(f"{path}: corrupt G-effect file skipped ({exc})", CorruptRecordWarning, stacklevel=2)
            return []
        return sorted((r for r in rows if isinstance(r, dict) and "step" in r), key=lambda r: r["step"])

    def record_files(self, kind: str, record_id: str) -> dict[str, bytes]:
        """Every file of a record as stored, by name (dot files, an atomic write in progress, left out)."""
        folder = self.folder(kind, record_id)
        return {file.name: file.read_bytes() for file in sorted(folder.iterdir())
                if file.is_file() and not file.name.startswith(".")}

    def restore(self, files: Mapping[str, bytes]) -> None:
        """Write a store's files as they are, by their path under its root (``runs/<id>/result.json``: the
        ``records/`` of a release bundle)."""
        for name, data in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def write(self, record: Record, per_item: Iterable[dict] = (), extra: dict[str, str] | None = None) -> Path:
        """Write spec, per-item rows and ``extra`` files (name -> text, e.g. ``geffect.jsonl``) first and
        ``result.json`` (``record.to_dict()``: the current schema) last; each atomically, all under the record's
        lock (see the module docstring). In a data-parallel run only process 0 writes (every process holds the same
        record)."""
        lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in per_item)
        return self._write_group(record, {PER_ITEM: lines, **(extra or {})})

    def write_rekeyed(self, record: Record, source_id: str) -> Path:
        """Write ``record``, a re-keyed copy of the record of the same kind stored as ``source_id``
        (``RunRecord.rekeyed``), with every file of the source other than ``spec.json`` and ``result.json`` byte for
        byte (per-item rows, G-effect measurements); the source is kept."""
        files = {name: data.decode("utf-8") for name, data in self.record_files(record.FOLDER, source_id).items()
                 if name not in (RESULT, SPEC)}
        return self._write_group(record, files)

    def _write_group(self, record: Record, files: Mapping[str, str]) -> Path:
        """``spec.json`` and ``files`` (name -> text), then ``result.json``, as one group under the record's lock."""
        folder = self.folder(record.FOLDER, record.id)
        if not is_main():
            return folder
        files = {SPEC: dumps(record.spec), **files}
        result = dumps(record.to_dict())
        with record_lock(folder) as locked:
            # no record while its files change: a crash from here on leaves none, and a rerun redoes it
            (folder / RESULT).unlink(missing_ok=True)
            if locked:  # under the lock no other writer is mid-write: temporary files are a killed writer's
                for leftover in folder.glob(f".*{TMP_SUFFIX}"):
                    leftover.unlink(missing_ok=True)
            for stale in folder.iterdir():  # files of an earlier version of this record that this one lacks
                if stale.is_file() and not stale.name.startswith(".") and stale.name not in files:
                    stale.unlink(missing_ok=True)
            for name, text in files.items():
                atomic_write_text(folder / name, text)
            atomic_write_text(folder / RESULT, result)
        return folder

    def models_folder(self, run_id: str) -> Path:
        """Where run ``run_id`` keeps its models: ``runs/<id>/models/``, one ``save_pretrained`` folder per kind
        (``final``, ``calibrated``)."""
        return self.folder(RunRecord.FOLDER, run_id) / MODELS

    def kept_models(self, run_id: str) -> dict[str, Path]:
        """The run's kept model folders by kind, complete ones only (a ``config.json``: a folder is renamed into
        place whole, so a partial one is never seen here)."""
        folder = self.models_folder(run_id)
        if not folder.is_dir():
            return {}
        return {p.name: p for p in sorted(folder.iterdir())
                if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()}

    def keep_model(self, run_id: str, kind: str, fill: Callable[[Path], None]) -> Path:
        """Write the model folder ``models/<kind>`` of run ``run_id`` atomically: ``fill`` writes a temporary
        sibling folder, which replaces any earlier folder of that kind by a rename, so a crash leaves the old folder
        or the new one, plus at most a hidden temporary folder."""
        folder = self.models_folder(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}.", suffix=TMP_SUFFIX, dir=folder))
        try:
            fill(tmp)
            dest = folder / kind
            if dest.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{kind}.old.", suffix=TMP_SUFFIX, dir=folder))
                os.replace(dest, old / kind)
                shutil.rmtree(old)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return dest

    def ids(self, kind: str) -> list[str]:
        """The ids of the records of ``kind`` (``runs`` or ``refs``) with a folder in the store, sorted (a folder
        without ``result.json`` included: ``load`` says whether it holds a record)."""
        folder = self.root / kind
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def claim_path(self, record_id: str) -> Path:
        """Where the claim of the run computing record ``record_id`` is (``bench.runtime.claims``)."""
        return self.root / CLAIMS / f"{record_id}.json"

    def tables_folder(self, board_name: str) -> Path:
        """Where tables built from this store go when they must not replace a board's own tables:
        ``<root>/boards/<name>/``."""
        return self.root / "boards" / board_name

    def search_path(self, search_id: str) -> Path:
        """Where the summary of search ``search_id`` is (to name in a message)."""
        return self.root / SEARCHES / f"{search_id}.json"

    def load_search(self, search_id: str) -> SearchRecord | None:
        """The stored summary of calibrated search ``search_id``, or None (absent; a corrupt one is named in a
        ``CorruptRecordWarning`` and treated as absent)."""
        path = self.search_path(search_id)
        data = _read_json(path, "search summary")
        if data is _ABSENT:
            return None
        try:
            return SearchRecord.from_dict(data)
        except RecordFormatError as exc:
            warnings.warn(f"{path}: malformed search summary skipped ({_one_line(exc)})", CorruptRecordWarning,
                          stacklevel=2)
            return None

    def search_bytes(self, search_id: str) -> bytes | None:
        """The stored summary file of search ``search_id`` as it is (a release bundles it byte for byte), or None."""
        path = self.search_path(search_id)
        return path.read_bytes() if path.is_file() else None

    def write_search(self, record: SearchRecord) -> None:
        """Store a search summary atomically (``searches/<id>.json``)."""
        atomic_write_text(self.search_path(record.id), dumps(record.to_dict()))

    def search_ids(self) -> list[str]:
        """The ids of the stored search summaries, sorted."""
        folder = self.root / SEARCHES
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


_ABSENT = object()


def _read_json(path: Path, what: str) -> Any:
    """The parsed JSON of ``path``, or ``_ABSENT`` (no file; or unreadable or not JSON: then a one-line
    ``CorruptRecordWarning`` names the file)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # absent, or removed by a writer between two reads: no record (yet)
        return _ABSENT
    except OSError as exc:
        warnings.warn(f"{path}: unreadable {what} skipped ({_one_line(exc.strerror or exc)})",
                      CorruptRecordWarning, stacklevel=3)
        return _ABSENT
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSON / UTF-8 errors are ValueErrors
        detail = "nested too deeply" if isinstance(exc, RecursionError) else exc
        warnings.warn(f"{path}: corrupt {what} skipped ({_one_line(detail)})", CorruptRecordWarning, stacklevel=3)
        return _ABSENT


@contextlib.contextmanager
def report_corrupt_records(stream: TextIO | None = None, prefix: str = "ubench: warning: ") -> Iterator[list[str]]:
    """Within the block, every ``CorruptRecordWarning`` prints one line ``<prefix><message>`` on ``stream``
    (stderr by default) the first time its message is seen, however many times the file is read; other warnings
    are shown as usual. Yields the list of reported messages."""
    seen: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("always", CorruptRecordWarning)
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            if isinstance(category, type) and issubclass(category, CorruptRecordWarning):
                text = _one_line(str(message))
                if text not in seen:
                    seen.append(text)
                    print(f"{prefix}{text}", file=stream or sys.stderr, flush=True)
                return
            original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield seen
