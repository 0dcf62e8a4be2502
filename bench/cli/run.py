"""``ubench run`` (run a board's missing cells, then write its tables) and ``ubench board`` (rebuild the tables from
stored records only)."""

from __future__ import annotations

import argparse
import dataclasses
import time

from bench.cli.common import load_plugins, print_tables, redirect_output
from bench.grid.cells import plan
from bench.grid.executor import ExecutorError
from bench.grid.executors import make_executor
from bench.grid.select import select_cells
from bench.release.publish import write_tables
from bench.runtime.distributed import init_from_env, is_main
from bench.runtime.logs import quiet
from bench.runtime.paths import results_dir
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError


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
    failures = 0
    done = 0
    start = time.perf_counter()

    def report(_index: int, cell, record: RunRecord, cached: bool) -> None:
        nonlocal done, failures
        done += 1
        seconds = record.timings.get("total_seconds", time.perf_counter() - start)
        took = "stored" if cached else f"{seconds:.1f}s"
        status = record.status
        detail = f" ({record.error.message})" if record.error else ""
        print(f"[{done}/{len(cells)}] {cell.name}: {status}{detail} [{took}]", flush=True)
        failures += status != "ok"

    executor.run(cells, board, store, reuse=not args.rerun, on_done=report if is_main() else None)
    if not is_main():
        return 0
    table, paths = write_tables(board, store, redirect_partial=not args.out)
    print()
    print_tables(board, table, paths)
    return 1 if failures else 0


def cmd_board(args: argparse.Namespace) -> int:
    """Rebuild the tables from stored records only (``write_tables``): into the board's folder when the store holds
    every cell, else into ``<store>/boards/<name>/`` (or ``--out``); a store with none of its records is exit 2."""
    load_plugins(args.plugin)
    board = redirect_output(LeaderboardSpec.load(args.board), args)
    quiet()
    table, paths = write_tables(board, Store(args.results or results_dir()), redirect_partial=not args.out)
    print_tables(board, table, paths)
    return 0
