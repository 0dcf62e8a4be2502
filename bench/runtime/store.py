"""The result store: one folder per content-addressed record, every file written atomically.

``<root>/runs/<run_id>/`` holds ``spec.json``, ``per_item.jsonl``, any extra files (``geffect.jsonl``) and, written
last, ``result.json``: a record exists iff its ``result.json`` does, so a crash mid-write leaves no record (and a
rerun redoes it). Reference records (the target and the retain oracle evaluated before any unlearning) live under
``<root>/refs/<ref_id>/``. Runs are keyed by run id, not by board, so boards that share a cell share its record.

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

A ``result.json`` that cannot be read (truncated, not JSON, not UTF-8, a wrong shape or schema) is reported by
``CorruptRecordWarning`` naming the file, in one line, and treated as absent: the board skips it and a run redoes
it. ``report_corrupt_records`` turns those warnings into one ``ubench: warning:`` line per file on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from bench.runtime.distributed import is_main

try:
    import fcntl
except ImportError:  # not POSIX: atomic renames only
    fcntl = None

SCHEMA_VERSION = 1
LOCK_NAME = ".lock"
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


def _shape_problem(record: Any) -> str | None:
    """Why a parsed ``result.json`` is not a record the board can read, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    if record.get("schema_version") != SCHEMA_VERSION:
        return f"unknown record schema {record.get('schema_version')!r} (expected {SCHEMA_VERSION})"
    expected = {"status": (str,), "error": (dict, type(None)), "metrics": (dict,), "spec": (dict,),
                "timings": (dict,), "env": (dict,), "control": (dict, type(None)), "train": (dict, type(None))}
    for key, types in expected.items():
        if key in record and not isinstance(record[key], types):
            names = " or ".join("null" if t is type(None) else {"str": "string", "dict": "object"}[t.__name__]
                                for t in types)
            return f"field {key!r} must be {names}, got {type(record[key]).__name__}"
    return None


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, kind: str, record_id: str) -> Path:
        return self.root / kind / record_id

    def load(self, kind: str, record_id: str) -> dict | None:
        """The record, or None when absent. A corrupt file is reported by name (``CorruptRecordWarning``, one line)
        and treated as absent."""
        return self.load_file(self.folder(kind, record_id) / "result.json")

    @staticmethod
    def load_file(path: Path) -> dict | None:
        """``Store.load`` on a ``result.json`` path."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # absent, or removed by a writer between two reads: no record (yet)
            return None
        except OSError as exc:
            warnings.warn(f"{path}: unreadable record skipped ({_one_line(exc.strerror or exc)})",
                          CorruptRecordWarning, stacklevel=3)
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # JSON / UTF-8 errors are ValueErrors
            detail = "nested too deeply" if isinstance(exc, RecursionError) else exc
            warnings.warn(f"{path}: corrupt record skipped ({_one_line(detail)})", CorruptRecordWarning,
                          stacklevel=3)
            return None
        problem = _shape_problem(record)
        if problem is not None:
            warnings.warn(f"{path}: malformed record skipped ({_one_line(problem)})", CorruptRecordWarning,
                          stacklevel=3)
            return None
        return record

    def per_item(self, kind: str, record_id: str) -> list[dict]:
        path = self.folder(kind, record_id) / "per_item.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def write(self, kind: str, record_id: str, record: dict, per_item: Iterable[dict] = (),
              extra: dict[str, str] | None = None) -> Path:
        """Write spec, per-item rows and ``extra`` files (name -> text, e.g. ``geffect.jsonl``) first and
        ``result.json`` last; each atomically, all under the record's lock (see the module docstring). In a
        data-parallel run only process 0 writes (every process holds the same record)."""
        folder = self.folder(kind, record_id)
        if not is_main():
            return folder
        lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in per_item)
        files = {"spec.json": dumps(record.get("spec", {})), "per_item.jsonl": lines, **(extra or {})}
        result = dumps({"schema_version": SCHEMA_VERSION, **record})
        with record_lock(folder) as locked:
            # no record while its files change: a crash from here on leaves none, and a rerun redoes it
            (folder / "result.json").unlink(missing_ok=True)
            if locked:  # under the lock no other writer is mid-write: temporary files are a killed writer's
                for leftover in folder.glob(f".*{TMP_SUFFIX}"):
                    leftover.unlink(missing_ok=True)
            for stale in folder.iterdir():  # files of an earlier version of this record that this one lacks
                if stale.is_file() and not stale.name.startswith(".") and stale.name not in files:
                    stale.unlink(missing_ok=True)
            for name, text in files.items():
                atomic_write_text(folder / name, text)
            atomic_write_text(folder / "result.json", result)
        return folder


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
