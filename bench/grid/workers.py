"""Worker processes of the local pool (``bench.grid.pool``): ``WorkerSlots`` runs jobs on ``size`` spawned processes,
one job at a time each, and the workers die with the run.

**Why not ``concurrent.futures.ProcessPoolExecutor``** (issue 18). When one of its workers dies (kill -9, the OOM
killer), it marks the whole pool broken, fails every pending future and terminates the other workers, so their cells
in progress are thrown away too; leaving it waits for the jobs in flight (a Ctrl-C was answered only when they ended);
its queues hold semaphores, which a second Ctrl-C left to the resource tracker's "leaked semaphore" warning; and its
workers outlived a killed parent, finishing the grid and idling at 700 MB each.

**The design.** Each slot is one spawned process with its own pipe, and nothing else is shared (no queue, no
semaphore). The parent sends a job (a module-level function and its arguments, pickled); the worker answers with the
result, or with the exception and its traceback. The parent waits on the pipes and process sentinels of every busy
worker at once (``multiprocessing.connection.wait``), and hands the next job to whichever slot is free, so a slot's
next job comes from ``next_job`` at the moment it starts (a cell is claimed only then: ``bench.runtime.claims``). A
worker that dies takes only its own job down: the parent finds its sentinel ready with no answer, hands the job and the
signal that killed it to ``on_lost``, and the slot's next job starts a fresh worker; the other workers go on. Leaving
the slots normally stops idle workers; leaving them on an exception (Ctrl-C included) kills every worker at once: a
job in flight is lost, and its cell is redone by the next run (records are written atomically:
``bench.runtime.store``).

**Workers die with the run.** Each worker asks the kernel for SIGKILL when its parent dies (Linux
``prctl(PR_SET_PDEATHSIG)``, through ctypes; the kernel sends it when the parent *thread* that started the worker ends,
so slots start their workers from the thread that runs them), and, on every platform, a daemon thread polls the
parent pid and exits the worker once it changed (the worker was re-parented: its parent died). Workers ignore SIGINT:
a terminal's Ctrl-C reaches the whole process group, and the parent alone decides what an interrupt stops.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_SECONDS = 1.0
STOP_SECONDS = 5.0  # an idle worker told to stop is killed after this long


@dataclass(frozen=True)
class Job:
    """``fn(*args)`` in a worker; ``name`` says what it is in a message (a cell's name), ``key`` is the caller's."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    key: Any = None


class WorkerDied(RuntimeError):
    """A worker died while running a job that has no ``on_lost`` handler (a model build, a reference evaluation)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (the ``__cause__`` of the exception re-raised here)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def death(exitcode: int | None) -> str:
    """How a worker ended, in words: ``signal 9`` (killed), ``exit code 1``."""
    if exitcode is not None and exitcode < 0:
        return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def die_with_parent(parent: int) -> None:
    """Make this process end when process ``parent`` (its parent) ends: ``PR_SET_PDEATHSIG`` on Linux, and a thread
    that polls the parent pid everywhere. Exits at once when the parent is already gone."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the polling thread alone
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="ubench-watch-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _error(exc: BaseException) -> tuple[str, BaseException, str]:
    """The answer for an exception: the exception itself when it pickles, else a RuntimeError naming it."""
    text = traceback.format_exc()
    try:
        pickle.dumps(exc)
    except Exception:  # an exception that does not pickle: its type and message travel instead
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return ("error", exc, text)


def _serve(conn: Connection, parent: int) -> None:
    """A worker: arm its death with ``parent``, run the initializer that arrives first on ``conn``, then run each job
    received and send back ``("ok", result)`` or ``("error", exc, traceback)``, until the pipe closes or ``None``
    arrives. An initializer that fails makes every answer its error. (The initializer comes over the pipe, not as an
    argument of the process, so that unpickling it, which imports the harness (seconds), happens after the death with
    the parent is armed: a run killed while its workers start leaves none behind.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    failed = None
    try:
        initializer, initargs = conn.recv()
        if initializer is not None:
            initializer(*initargs)
    except EOFError:
        return
    except Exception as exc:  # reported with the first job's answer: the parent names the job and the error
        failed = _error(exc)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        answer = failed or _call(*job)
        try:
            conn.send(answer)
        except Exception as exc:  # a result that does not pickle
            conn.send(_error(exc))


def _call(fn: Callable[..., Any], args: tuple) -> tuple:
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # sent to the parent, which re-raises it there
        return _error(exc)


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    job: Job | None = None


class WorkerSlots:
    """``size`` worker processes (spawned on first use), each running one job at a time (see the module docstring).
    ``initializer(*initargs)`` runs first in every worker. A context manager: leaving it stops the workers (kills them
    when leaving on an exception)."""

    def __init__(self, size: int, initializer: Callable[..., None] | None = None, initargs: Sequence = ()) -> None:
        self.size = max(1, size)
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self._context = get_context("spawn")  # a fork of a process that already ran torch can deadlock in OpenMP
        self._workers: list[_Worker | None] = [None] * self.size

    def __enter__(self) -> WorkerSlots:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.close(kill=exc_type is not None)

    def _spawn(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs, os.getpid()), name="ubench-worker", daemon=True)
        process.start()
        theirs.close()
        ours.send((self.initializer, self.initargs))
        return _Worker(process, ours)

    def _free_slot(self) -> int | None:
        """A slot with no job in flight."""
        return next((slot for slot, w in enumerate(self._workers) if w is None or w.job is None), None)

    def _start_job(self, slot: int, job: Job) -> None:
        """Send ``job`` to the worker of ``slot``, first starting one where there is none (or it died idle). A worker
        that dies before it reads the job is noticed by ``run`` like any other death."""
        worker = self._workers[slot]
        if worker is None or not worker.process.is_alive():
            self._discard(slot)
            worker = self._workers[slot] = self._spawn()
        worker.job = job
        try:
            worker.conn.send((job.fn, job.args))
        except OSError:  # the worker died meanwhile: its sentinel is ready
            pass

    def _discard(self, slot: int) -> None:
        worker = self._workers[slot]
        if worker is not None:
            worker.process.kill()
            worker.process.join()
            worker.conn.close()
        self._workers[slot] = None

    def run(self, next_job: Callable[[], Job | None], on_result: Callable[[Job, Any], None],
            on_lost: Callable[[Job, str], None] | None = None) -> None:
        """Run jobs until ``next_job()`` gives None and every job has ended: each free slot takes ``next_job()``;
        ``on_result(job, result)`` is called with each result as it comes. A job whose worker died goes to
        ``on_lost(job, how)`` (``how``: ``signal 9``), or, without it, ends the run with ``WorkerDied`` once the other
        jobs in flight have ended. A job that raised stops new jobs from starting; the jobs in flight end, and then
        its exception is raised here, with the worker's traceback as its cause."""
        failure: BaseException | None = None
        while True:
            while failure is None and (slot := self._free_slot()) is not None:
                job = next_job()
                if job is None:
                    break
                self._start_job(slot, job)
            busy = [(slot, w) for slot, w in enumerate(self._workers) if w is not None and w.job is not None]
            if not busy:
                break
            ready = set(wait([h for _, w in busy for h in (w.conn, w.process.sentinel)]))
            for slot, worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    error = self._collect(slot, on_result, on_lost)
                    failure = failure or error  # the first one is raised
        if failure is not None:
            raise failure

    def _collect(self, slot: int, on_result: Callable[[Job, Any], None],
                 on_lost: Callable[[Job, str], None] | None) -> BaseException | None:
        """Take the answer of the worker in ``slot`` (or notice its death); the exception that must end the run."""
        worker = self._workers[slot]
        job, worker.job = worker.job, None
        try:
            answer = worker.conn.recv() if worker.conn.poll() else None
        except (EOFError, OSError):
            answer = None
        if answer is None:  # the worker died with the job
            worker.process.join()
            how = death(worker.process.exitcode)
            self._discard(slot)
            if on_lost is None:
                return WorkerDied(f"worker for {job.name} died ({how})")
            on_lost(job, how)
            return None
        if answer[0] == "ok":
            on_result(job, answer[1])
            return None
        exc = answer[1]
        exc.__cause__ = RemoteTraceback(answer[2])
        return exc

    def start(self) -> None:
        """Start every slot's worker now (they otherwise start with their first job)."""
        for slot, worker in enumerate(self._workers):
            if worker is None:
                self._workers[slot] = self._spawn()

    def close(self, kill: bool = False) -> None:
        """Stop the workers: idle ones are told to stop (killed after ``STOP_SECONDS``); busy ones, and all of them
        with ``kill``, are killed at once."""
        for worker in self._workers:
            if worker is None:
                continue
            if kill or worker.job is not None:
                worker.process.kill()
            else:
                try:
                    worker.conn.send(None)
                except OSError:  # already gone
                    worker.process.kill()
        for slot, worker in enumerate(self._workers):
            if worker is not None:
                worker.process.join(STOP_SECONDS)
                self._discard(slot)
