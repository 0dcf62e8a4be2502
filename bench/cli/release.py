"""``ubench release`` (freeze a board into a citable release), ``ubench cite`` (its BibTeX) and ``ubench reproduce``
(rerun or read a board's cells and check them against a release)."""

from __future__ import annotations

import argparse

from bench.cli.common import load_plugins, redirect_output
from bench.grid.cells import plan
from bench.grid.executors import make_executor
from bench.release.bundle import BUNDLE, release
from bench.release.cite import cite, split_board_arg
from bench.release.publish import write_tables
from bench.release.reproduce import compare, latest_version
from bench.runtime.logs import quiet
from bench.runtime.paths import results_dir
from bench.runtime.records import RunRecord
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Run the board's missing cells into the store (none when it already holds them), then compare every cell,
    row and the sort column's significance groups with the release (``bench.release.reproduce``); exit 1 when the
    conclusions differ."""
    path, version = split_board_arg(args.board)
    load_plugins(args.plugin)
    board = LeaderboardSpec.load(path)
    version = version or latest_version(board)
    store = Store(args.results or results_dir())
    cells = plan(board)
    plugins = [*args.plugin, *(c.method.plugin for c in cells if c.method.plugin)]
    quiet()
    done = 0

    def report(_index: int, cell, record: RunRecord, cached: bool) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{len(cells)}] {cell.name}: {record.status} [{'stored' if cached else 'ran'}]", flush=True)

    make_executor(None, jobs=args.jobs, plugins=plugins).run(cells, board, store, reuse=True, on_done=report)
    result = compare(board, store, version)
    print("\n".join(result.lines()))
    return 0 if result.conclusions_agree else 1


def cmd_release(args: argparse.Namespace) -> int:
    """Freeze the board's current records into ``<out_dir>/releases/<version>/`` (``bench.release``); an unchanged
    board reports its existing release and writes nothing. Missing or failed cells: exit 2 unless
    ``--allow-incomplete``."""
    load_plugins(args.plugin)
    board = redirect_output(LeaderboardSpec.load(args.board), args)
    quiet()
    store = Store(args.results or results_dir())
    manifest, folder, created = release(board, store, allow_incomplete=args.allow_incomplete)
    if not created:
        print(f"release {manifest['version']} of {board.name} already exists ({folder}); no change since, "
              "nothing written")
        return 0
    _table, paths = write_tables(board, store)
    hashed = sum(f["hashed"] for f in manifest["files"].values())
    print(f"released {board.name} {manifest['version']}: {folder / BUNDLE} ({len(manifest['files'])} files, "
          f"content hash sha256:{manifest['content_hash']} over {hashed})")
    if manifest["incomplete"]:
        print(f"incomplete: {len(manifest['incomplete'])} entries missing or not ok (listed in the manifest)")
    print(f"wrote {paths['markdown']} and {paths['csv']}; cite with: ubench cite {args.board}@{manifest['version']}")
    return 0


def cmd_cite(args: argparse.Namespace) -> int:
    """BibTeX for the suite, a board release (``BOARD@VERSION``; the current state without one) and its papers."""
    load_plugins(args.plugin)
    path, version = split_board_arg(args.board)
    board = redirect_output(LeaderboardSpec.load(path), args)
    print(cite(board, Store(args.results or results_dir()), version), end="")
    return 0
