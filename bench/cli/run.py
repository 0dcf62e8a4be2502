"""``ubench run`` (run a board's missing cells, then write its tables) and ``ubench board`` (rebuild the tables from
stored records only).

What a run says while it works: stdout has one line per cell as it ends (``[3/21] CELL: ok [41.2s]``, or ``[stored]``)
and then the board; stderr has the progress lines (``bench.runtime.progress``): ``[4/21] start CELL`` as a cell
starts, and a line for each step that takes more than a few seconds (models, reference evaluations, a cell's
phases). Ctrl-C answers at once with ``ubench: interrupting: finishing nothing, keeping stored cells``: the workers
are killed, the stored cells stay, the run's claims are released, and it exits 130; a second Ctrl-C while it shuts
down is ignored. A run whose worker died ends with exit 1 and the cells it lacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from bench.cli.common import load_plugins, print_tables, redirect_output
from bench.grid.cells import Cell, plan
from bench.grid.executor import ExecutorError, IncompleteRun
from bench.grid.executors import make_executor
from bench.grid.select import select_cells
from bench.grid.workers import WorkerDied
from bench.release.publish import write_tables
from bench.runtime.distributed import init_from_env, is_main
from bench.runtime.logs import quiet
from bench.runtime.paths import results_dir
from bench.runtime.progress import note, progress_on_stderr
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

INTERRUPTING = "ubench: interrupting: finishing nothing, keeping stored cells"


def _interrupt(_signum: int, _frame: object) -> None:
    """The first Ctrl-C: say so at once, ignore any further one, and unwind (workers killed, claims released)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(INTERRUPTING, file=sys.stderr, flush=True)
    raise KeyboardInterrupt


@contextmanager
def answer_interrupts() -> Iterator[None]:
    """Within the block, Ctrl-C is ``_interrupt`` (in the main thread only: elsewhere Python keeps its handler). The
    previous handler comes back after a block that was not interrupted; an interrupted run keeps ignoring Ctrl-C
    until it exits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt)
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not interrupted:
            signal.signal(signal.SIGINT, previous)


class Progress:
    """The per-cell lines of a run of ``total`` cells: ``start`` on stderr as a cell starts here, ``done`` on stdout as
    each ends (the lines tests and scripts parse); counts the failures."""

    def __init__(self, total: int) -> None:
        self.total, self.started, self.done, self.failures = total, 0, 0, 0
        self.clock = time.perf_counter()

    def start(self, _index: int, cell: Cell) -> None:
        self.started += 1
        note(f"[{self.started}/{self.total}] start {cell.name}")

    def end(self, _index: int, cell: Cell, record: RunRecord, cached: bool) -> None:
        self.done += 1
        self.started += cached  # a stored cell counts among the started ones: the start lines count up to total
        seconds = record.timings.get("total_seconds", time.perf_counter() - self.clock)
        took = "stored" if cached else f"{seconds:.1f}s"
        detail = f" ({record.error.message})" if record.error else ""
        print(f"[{self.done}/{self.total}] {cell.name}: {record.status}{detail} [{took}]", flush=True)
        self.failures += record.status != "ok"


def cmd_run(args: argparse.Namespace) -> int:
    load_plugins(args.plugin)
    board = redirect_output(LeaderboardSpec.load(args.board), args)
    if args.keep_models:
        board = dataclasses.replace(board, keep_models=True)
    cells = select_cells(plan(board), args.k, args.board)
    if not cells:
        raise SpecError(f"{args.board}: -k {args.k!r} selects no entry")
    plugins = [*args.plugin, *board.plugin_files]
    executor = make_executor(args.executor, jobs=args.jobs, address=args.address, plugins=plugins)
    store = Store(args.results or results_dir())
    quiet()

    # under `accelerate launch` / `torchrun`: every process runs every cell data-parallel, process 0 reports
    if init_from_env():
        if args.executor == "ray":
            raise ExecutorError("--executor ray: under accelerate launch / torchrun every process runs every cell "
                                "data-parallel; launch ubench directly to run cells as Ray tasks")
        executor = make_executor("inprocess", plugins=plugins)
    progress = Progress(len(cells))
    try:
        with answer_interrupts(), progress_on_stderr() if is_main() else nullcontext():
            executor.run(cells, board, store, reuse=not args.rerun, on_done=progress.end if is_main() else None,
                         on_start=progress.start if is_main() else None)
    except IncompleteRun as exc:  # each missing cell was named as it went missing
        print(f"ubench: {len(exc.missing)} of {len(cells)} cells not stored; the stored ones stay, rerun to resume",
              file=sys.stderr)
        return 1
    except WorkerDied as exc:  # while building a model or evaluating a reference: no cell started
        print(f"ubench: {exc}; the stored cells stay, rerun to resume", file=sys.stderr)
        return 1
    if not is_main():
        return 0
    table, paths = write_tables(board, store, redirect_partial=not args.out)
    print()
    print_tables(board, table, paths)
    return 1 if progress.failures else 0


def cmd_board(args: argparse.Namespace) -> int:
    """Rebuild the tables from stored records only (``write_tables``): into the board's folder when the store holds
    every cell, else into ``<store>/boards/<name>/`` (or ``--out``); a store with none of its records is exit 2."""
    load_plugins(args.plugin)
    board = redirect_output(LeaderboardSpec.load(args.board), args)
    quiet()
    table, paths = write_tables(board, Store(args.results or results_dir()), redirect_partial=not args.out)
    print_tables(board, table, paths)
    return 0
