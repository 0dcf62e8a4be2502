"""Progress lines on stderr for the steps of a run that take more than a few seconds (issue 18: a first run printed
nothing for 225 s while it loaded models and evaluated references).

A step (``slow_step``) prints nothing when it ends within ``UBENCH_PROGRESS_AFTER`` seconds (default 3): quick steps
stay silent. Past that, one line says it is running, and a second one says how long it took when it ends. Lines go
through the ``bench.progress`` logger at INFO: ``ubench run`` sends them to stderr while it runs
(``progress_on_stderr``), and so do its worker processes (``show_progress``: they inherit its stderr), so the stdout
lines that scripts and tests parse are untouched; elsewhere (the pytest plug-in, library use) INFO lines are dropped
unless the caller adds a handler. ``warn`` lines (a worker that died) are shown either way.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = logging.getLogger("bench.progress")
AFTER_ENV = "UBENCH_PROGRESS_AFTER"
DEFAULT_AFTER = 3.0
PREFIX = "ubench: "


class _StderrHandler(logging.Handler):
    """Each line to the ``sys.stderr`` of the moment it is written (a test's captured stream included), flushed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # a closed stream: logging's own report, as for any handler
            self.handleError(record)


def show_progress() -> None:
    """Show progress lines on stderr, one per line as they happen, in this process. Idempotent."""
    if any(isinstance(h, _StderrHandler) for h in LOGGER.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(PREFIX + "%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


@contextmanager
def progress_on_stderr() -> Iterator[None]:
    """``show_progress`` within the block; afterwards progress lines are as they were before it."""
    handlers, level, propagate = list(LOGGER.handlers), LOGGER.level, LOGGER.propagate
    show_progress()
    try:
        yield
    finally:
        LOGGER.handlers[:] = handlers
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate


def progress_shown() -> bool:
    """Whether progress lines are shown in this process (a worker process shows them when its parent does)."""
    return LOGGER.isEnabledFor(logging.INFO)


def note(message: str) -> None:
    """A progress line (shown where ``show_progress`` was called)."""
    LOGGER.info(message)


def warn(message: str) -> None:
    """A line that is always shown on stderr, e.g. ``worker for CELL died (signal 9); rerun to resume``."""
    if LOGGER.handlers:
        LOGGER.warning(message)
    else:
        print(PREFIX + message, file=sys.stderr, flush=True)


def progress_after() -> float:
    """Seconds a step runs before it is announced: ``UBENCH_PROGRESS_AFTER`` (default 3; 0 announces every step)."""
    try:
        return max(0.0, float(os.environ.get(AFTER_ENV, DEFAULT_AFTER)))
    except ValueError:
        return DEFAULT_AFTER


@contextmanager
def slow_step(what: str) -> Iterator[None]:
    """Announce ``what ...`` once it has run ``progress_after()`` seconds, and ``what: done in S s`` when it then ends;
    nothing for a step that ends sooner, nor where progress is not shown. The announcement comes from a timer thread,
    so a step that blocks (a model load, a forward pass) is announced while it runs."""
    if not progress_shown():
        yield
        return
    after, start = progress_after(), time.perf_counter()
    announced, lock = threading.Event(), threading.Lock()  # the lock: never "done" before "..."

    def announce() -> None:
        with lock:
            if not finished.is_set():
                announced.set()
                note(f"{what} ...")

    finished = threading.Event()

    timer = threading.Timer(after, announce)
    timer.daemon = True
    if after == 0:
        announce()
    else:
        timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            finished.set()
        if announced.is_set():
            note(f"{what}: done in {time.perf_counter() - start:.1f}s")
