"""``ubench``: run a leaderboard, rebuild its tables, list what is registered, measure harness overhead.

User errors (bad YAML, unknown names, bad hyper-parameters) print one line ``ubench: error: ...`` and exit 2
before anything is written. A cell that fails while running is stored as failed; the command then exits 1.
``ubench submit`` checks an outside method's entry and adds it to a board (exit 1 when a check fails);
``ubench new-method`` writes a starter method file and its entry.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from collections.abc import Sequence

from bench.registry import METHODS, METRICS, TASKS, RegistryError
from bench.spec import SpecError


def _quiet() -> None:
    import warnings

    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


def _select(cells, pattern: str | None):
    if not pattern:
        return cells
    return [c for c in cells if pattern.lower() in c.name.lower() or fnmatch.fnmatch(c.name, pattern)]


def _load_plugins(paths: Sequence[str]) -> None:
    for path in paths:
        METHODS.load_plugin_file(path)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.leaderboard import plan, to_markdown, write_tables
    from bench.paths import results_dir
    from bench.runner import execute
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    _load_plugins(args.plugin)
    board = LeaderboardSpec.load(args.board)
    cells = _select(plan(board), args.k)
    if not cells:
        raise SpecError(f"{args.board}: -k {args.k!r} selects no entry")
    store = Store(args.results or results_dir())
    _quiet()
    failures = 0
    for i, cell in enumerate(cells, 1):
        cached = store.load("runs", cell.spec.run_id) is not None and not args.rerun
        start = time.perf_counter()
        record = execute(cell.spec, store, reuse=not args.rerun)
        took = "stored" if cached else f"{time.perf_counter() - start:.1f}s"
        status = record["status"]
        detail = f" ({record['error']['message']})" if record.get("error") else ""
        print(f"[{i}/{len(cells)}] {cell.name}: {status}{detail} [{took}]", flush=True)
        failures += status != "ok"
    table, paths = write_tables(board, store)
    print()
    print(to_markdown(board, table))
    print(f"wrote {paths['markdown']} and {paths['csv']}")
    return 1 if failures else 0


def cmd_board(args: argparse.Namespace) -> int:
    from bench.leaderboard import to_markdown, write_tables
    from bench.paths import results_dir
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    _load_plugins(args.plugin)
    board = LeaderboardSpec.load(args.board)
    _quiet()
    table, paths = write_tables(board, Store(args.results or results_dir()))
    print(to_markdown(board, table))
    print(f"wrote {paths['markdown']} and {paths['csv']}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from bench.data.tasks import task_names

    registries = {"methods": METHODS, "metrics": METRICS, "tasks": TASKS}
    if args.what == "tasks":
        print("task families:", ", ".join(TASKS.names()))
        print("tasks:", ", ".join(task_names()))
        return 0
    registry = registries[args.what]
    for name in registry.names():
        entry = registry.get(name)
        doc = getattr(entry, "description", None) or (entry.__doc__ or "").strip().splitlines()[0]
        print(f"{name:16s} {doc}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from bench.perf import step_overhead

    _quiet()
    report = step_overhead(args.task, args.split, args.method, steps=args.steps, repeats=args.repeats)
    print(report.text())
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from bench.submit import validate_and_submit

    _quiet()
    def echo(line: str) -> None:
        print(line, flush=True)

    report = validate_and_submit(args.entry, args.board, args.task, args.plugin, echo=echo)
    return 0 if report.ok else 1


def cmd_new_method(args: argparse.Namespace) -> int:
    from bench.submit import new_method

    code, entry = new_method(args.name, args.dir)
    print(f"wrote {code} and {entry}")
    print(f"next: edit forget_loss and paper in {code}, fill in {entry}, then run: ubench submit {entry}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ubench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a leaderboard's missing cells, then write its tables")
    run.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    run.add_argument("-k", help="only entries whose name contains this (or matches this glob)")
    run.add_argument("--rerun", action="store_true", help="ignore stored records and run again")
    board = sub.add_parser("board", help="rebuild a leaderboard's tables from stored records only")
    board.add_argument("board")
    for p in (run, board):
        p.add_argument("--results", help="result store folder (default: $UBENCH_RESULTS or ./results)")
        p.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
    ls = sub.add_parser("ls", help="list registered methods, metrics or tasks")
    ls.add_argument("what", choices=["methods", "metrics", "tasks"])
    perf = sub.add_parser("perf", help="harness step time / bare PyTorch step time on the same model and batch")
    perf.add_argument("--task", default="synthetic")
    perf.add_argument("--split", default="forget10")
    perf.add_argument("--method", default="ga")
    perf.add_argument("--steps", type=int, default=30)
    perf.add_argument("--repeats", type=int, default=5)
    submit = sub.add_parser("submit", help="check a method entry (smoke runs included) and add it to a board")
    submit.add_argument("entry", help="submission entry YAML, e.g. mymethod.entry.yaml")
    submit.add_argument("--board", help="leaderboard YAML (default: leaderboards/synthetic.yaml)")
    submit.add_argument("--task", help="task of the smoke runs (default: synthetic)")
    submit.add_argument("--plugin", help="a Python file registering the method (overrides the entry's plugin)")
    new = sub.add_parser("new-method", help="write a method file and its submission entry from the template")
    new.add_argument("name", help="registered name of the new method, e.g. my_method")
    new.add_argument("--dir", default=".", help="folder to write NAME.py and NAME.entry.yaml into (default: .)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "board": cmd_board, "ls": cmd_ls, "perf": cmd_perf, "submit": cmd_submit,
                "new-method": cmd_new_method}
    try:
        return handlers[args.command](args)
    except (SpecError, RegistryError) as exc:
        print(f"ubench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ubench: interrupted; finished cells are stored, a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
