"""Claims: which process is computing a cell right now, so that two ``ubench run``s of one board into one store compute
each cell once (issue 18: two runs side by side computed every cell twice, 1,090 s instead of about 100 s).

Before a run computes a cell it claims the cell's record id: ``Store.claim_path`` (``<store>/claims/<run id>.json``)
holds the owner's pid, host, the time of the claim, the owner process's own start time (which tells a live owner from
a later process that reuses its pid), a token naming the claiming run, and the cell. The file is created whole and
exclusively: written to a temporary file, then hard-linked to its name, and ``link(2)`` fails with EEXIST when the
name exists, as ``open(O_CREAT | O_EXCL)`` does, while a reader never sees a half-written claim.

A run skips a cell claimed by a live process and computes the others (``bench.grid.executor`` then waits for the
skipped ones). A claim whose owner is dead (no process with its pid and start time on this host, or a zombie) is
stale and is taken over, under an exclusive ``flock`` on ``claims/.lock`` so that two runs never both take over one
claim. A claim from another host cannot be checked from here and counts as live. A run removes its claim when the
cell's record is written (or the cell is lost) and all of its claims when it ends, however it ends; a run killed with
SIGKILL leaves stale claims, which the next run takes over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.runtime.store import Store

LOCK_NAME = ".lock"
SAME_START = 1.0  # seconds: psutil's process start times are exact to the clock tick; a reused pid starts later


def _start_time(pid: int) -> float | None:
    """The start time of live process ``pid`` (seconds since the epoch), or None (no such process, or a zombie)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


@dataclass(frozen=True)
class Claim:
    """Who computes a cell: process ``pid`` (started at ``process_start``) on ``host``, since ``claimed`` (ISO time),
    for the run ``token``; ``cell`` names the cell."""

    pid: int
    host: str
    claimed: str
    process_start: float
    token: str
    cell: str

    @classmethod
    def of_this_process(cls, token: str, cell: str) -> Claim:
        """A claim by this process for run ``token``."""
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   _start_time(os.getpid()) or 0.0, token, cell)

    @property
    def local(self) -> bool:
        """Whether the owner runs on this host (only then can its liveness be checked)."""
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Whether the owner may still be computing: a live process with its pid and start time on this host; a
        claim from another host counts as alive."""
        if not self.local:
            return True
        started = _start_time(self.pid)
        return started is not None and abs(started - self.process_start) < SAME_START

    def owner(self) -> str:
        """The owner in words, for a message: ``pid 123`` or ``pid 123 on host h``."""
        return f"pid {self.pid}" if self.local else f"pid {self.pid} on host {self.host}"


def read_claim(path: Path) -> Claim | None:
    """The claim stored at ``path``; None when there is none. An unreadable claim is returned as a claim of pid 0
    (never alive on this host), so that it is taken over."""
    try:
        data: Any = json.loads(path.read_text())
        return Claim(**{k: data[k] for k in Claim.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return Claim(0, socket.gethostname(), "", 0.0, "", path.stem)


def _create(path: Path, claim: Claim) -> bool:
    """Create the claim file ``path`` holding ``claim``, whole and only if it does not exist; whether it was created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(claim), f, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def _takeover_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder/.lock`` while a stale claim is replaced."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class Claims:
    """The claims of one run in one store; as a context manager, every claim still held is released on exit. Not
    ``enabled`` (the processes of one data-parallel run, which all compute every cell together), it claims nothing
    and finds no claim."""

    def __init__(self, store: Store, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self.token = uuid.uuid4().hex
        self.held: set[str] = set()

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_all()

    def take(self, record_id: str, cell: str) -> Claim | None:
        """Claim ``record_id`` (the run id of ``cell``) for this run: None when the run now holds it (a new claim, or
        a stale one taken over), else the live claim of another process."""
        if not self.enabled:
            return None
        path = self.store.claim_path(record_id)
        mine = Claim.of_this_process(self.token, cell)
        while not _create(path, mine):
            with _takeover_lock(path.parent):
                current = read_claim(path)
                if current is None:  # released since: claim it afresh
                    continue
                if current.token != self.token and current.alive():
                    return current
                if current.token != self.token:  # stale: its owner is dead
                    path.unlink(missing_ok=True)
                    continue
            break  # this run's own claim
        self.held.add(record_id)
        return None

    def current(self, record_id: str) -> Claim | None:
        """The claim on ``record_id`` now, by any run (None: nobody computes it)."""
        if not self.enabled:
            return None
        return read_claim(self.store.claim_path(record_id))

    def release(self, record_id: str) -> None:
        """Remove this run's claim on ``record_id`` (a claim of another run is left alone)."""
        if record_id not in self.held:
            return
        self.held.discard(record_id)
        path = self.store.claim_path(record_id)
        current = read_claim(path)
        if current is not None and current.token == self.token:
            path.unlink(missing_ok=True)

    def release_all(self) -> None:
        """Remove every claim this run still holds."""
        for record_id in list(self.held):
            self.release(record_id)
