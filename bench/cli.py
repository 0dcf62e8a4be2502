"""``ubench``: run a leaderboard, rebuild its tables, list what is registered, measure harness overhead.

User errors (bad YAML, unknown names, bad hyper-parameters) print one line ``ubench: error: ...`` and exit 2
before anything is written. A cell that fails while running is stored as failed; the command then exits 1.
``ubench submit`` checks an outside method's entry and adds it to a board (exit 1 when a check fails);
``ubench new-method`` writes a starter method file and its entry. ``ubench tune`` searches each board entry's
hyper-parameters within the budget tier's trial allowance, scoring calibrated endpoints only. ``ubench geffect``
measures the G-effect (arXiv 2502.19301) of a method at a checkpoint on a task split, without a run.
``ubench release`` freezes a board into a content-hashed, citable release and ``ubench cite`` prints its BibTeX
(``bench.release``, ``bench.citations``).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.data.hub import HubUnavailableError
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


def _with_output(board, args: argparse.Namespace):
    """The board with its tables redirected: to ``--out`` when given; else, for a store other than the default
    one (``--results``), to ``<results>/boards/<name>/`` (``bench.leaderboard.store_tables_dir``) when the spec is
    a committed board of this checkout, so tables built from another store never overwrite the committed ones. A
    board file elsewhere keeps its tables next to it. (``write_tables`` itself sends the tables of a store that
    lacks some of the board's cells to that same folder.)"""
    from bench.leaderboard import store_tables_dir, with_output
    from bench.paths import REPO_ROOT, results_dir

    out = getattr(args, "out", None)
    results = getattr(args, "results", None)
    if not out and results and Path(results).resolve() != results_dir().resolve():
        committed = (REPO_ROOT / "leaderboards").resolve()
        if Path(board.path).resolve().parent == committed:
            out = store_tables_dir(results, board)
    if not out:
        return board
    return with_output(board, out)


def _print_tables(board, table, paths: dict) -> None:
    """The board as markdown, where its tables went and, when the store lacks some cells, why they went there."""
    from bench.leaderboard import to_markdown

    print(to_markdown(board, table))
    print(f"wrote {paths['markdown']} and {paths['csv']}")
    if table.attrs.get("tables_note"):
        print(f"ubench: {table.attrs['tables_note']}")


def _load_plugins(paths: Sequence[str]) -> None:
    for path in paths:
        METHODS.load_plugin_file(path)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.executors import ExecutorError, make_executor
    from bench.leaderboard import plan, write_tables
    from bench.paths import results_dir
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    _load_plugins(args.plugin)
    board = _with_output(LeaderboardSpec.load(args.board), args)
    cells = _select(plan(board), args.k)
    if not cells:
        raise SpecError(f"{args.board}: -k {args.k!r} selects no entry")
    plugins = [*args.plugin, *(c.method.plugin for c in cells if c.method.plugin)]
    executor = make_executor(args.executor, jobs=args.jobs, address=args.address, plugins=plugins)
    store = Store(args.results or results_dir())
    _quiet()
    from bench.distributed import init_from_env, is_main

    # under `accelerate launch` / `torchrun`: every process runs every cell data-parallel, process 0 reports
    if init_from_env():
        if args.executor == "ray":
            raise ExecutorError("--executor ray: under accelerate launch / torchrun every process runs every cell "
                                "data-parallel; launch ubench directly to run cells as Ray tasks")
        executor = make_executor("inprocess", plugins=plugins)
    failures = 0
    done = 0
    start = time.perf_counter()

    def report(_index: int, cell, record: dict, cached: bool) -> None:
        nonlocal done, failures
        done += 1
        seconds = (record.get("timings") or {}).get("total_seconds", time.perf_counter() - start)
        took = "stored" if cached else f"{seconds:.1f}s"
        status = record["status"]
        detail = f" ({record['error']['message']})" if record.get("error") else ""
        print(f"[{done}/{len(cells)}] {cell.name}: {status}{detail} [{took}]", flush=True)
        failures += status != "ok"

    executor.run(cells, board, store, reuse=not args.rerun, on_done=report if is_main() else None)
    if not is_main():
        return 0
    table, paths = write_tables(board, store, redirect_partial=not args.out)
    print()
    _print_tables(board, table, paths)
    return 1 if failures else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Run the board's missing cells into the store (none when it already holds them), then compare every cell,
    row and the sort column's significance groups with the release (``bench.reproduce``); exit 1 when the
    conclusions differ."""
    from bench.executors import make_executor
    from bench.leaderboard import plan
    from bench.paths import results_dir
    from bench.release import split_board_arg
    from bench.reproduce import compare, latest_version
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    path, version = split_board_arg(args.board)
    _load_plugins(args.plugin)
    board = LeaderboardSpec.load(path)
    version = version or latest_version(board)
    store = Store(args.results or results_dir())
    cells = plan(board)
    plugins = [*args.plugin, *(c.method.plugin for c in cells if c.method.plugin)]
    _quiet()
    done = 0

    def report(_index: int, cell, record: dict, cached: bool) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{len(cells)}] {cell.name}: {record['status']} [{'stored' if cached else 'ran'}]", flush=True)

    make_executor(None, jobs=args.jobs, plugins=plugins).run(cells, board, store, reuse=True, on_done=report)
    result = compare(board, store, version)
    print("\n".join(result.lines()))
    return 0 if result.conclusions_agree else 1


def cmd_board(args: argparse.Namespace) -> int:
    """Rebuild the tables from stored records only (``write_tables``): into the board's folder when the store holds
    every cell, else into ``<store>/boards/<name>/`` (or ``--out``); a store with none of its records is exit 2."""
    from bench.leaderboard import write_tables
    from bench.paths import results_dir
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    _load_plugins(args.plugin)
    board = _with_output(LeaderboardSpec.load(args.board), args)
    _quiet()
    table, paths = write_tables(board, Store(args.results or results_dir()), redirect_partial=not args.out)
    _print_tables(board, table, paths)
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


def cmd_docs(args: argparse.Namespace) -> int:
    from bench.docs import write_docs

    print(f"wrote {write_docs()}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from bench.perf import calibration_cost, geffect_cost, step_overhead

    _quiet()
    if args.only in (None, "step"):
        report = step_overhead(args.task, args.split, args.method, steps=args.steps, repeats=args.repeats,
                               model=args.model)
        print(report.text(), flush=True)
    if args.only in (None, "calibration"):
        print(calibration_cost(args.task, args.split, args.method).text(), flush=True)
    if args.only in (None, "geffect"):
        report = geffect_cost(args.task, args.split, args.method, repeats=args.repeats, steps=args.steps)
        print(report.text(), flush=True)
    if args.only in (None, "eval"):
        from bench.perf_eval import eval_cost

        print(eval_cost(args.task, args.split).text(), flush=True)
    if args.only in (None, "grid"):
        from bench.perf_grid import grid_throughput

        print(grid_throughput(cells=args.cells).text(), flush=True)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from bench.submit import validate_and_submit

    _quiet()
    def echo(line: str) -> None:
        print(line, flush=True)

    from bench.submit import GIB, SandboxLimits

    limits = SandboxLimits(time_limit=args.time_limit, memory_limit=int(args.memory_limit * GIB))
    report = validate_and_submit(args.entry, args.board, args.task, args.plugin, echo=echo, limits=limits,
                                 workdir=args.workdir)
    return 0 if report.ok else 1


def _fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _fmt_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_tune(args: argparse.Namespace) -> int:
    """For each (task, method entry, seed) of the board, run a calibrated hyper-parameter search and print every
    trial (params, status, alpha, calibrated forget ES, AUC; ``*`` marks the selected one) and the selections.
    Exit 0 when every search selected a trial, 1 when some search had no ``ok`` trial."""
    from bench.control.search import search
    from bench.control.tiers import tier_trials, tiers
    from bench.leaderboard import plan
    from bench.paths import results_dir
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    _load_plugins(args.plugin)
    board = LeaderboardSpec.load(args.board)
    cells = plan(board)
    if args.method is not None:
        cells = [c for c in cells if c.method.display == args.method]
        if not cells:
            labels = ", ".join(dict.fromkeys(m.display for m in board.methods))
            raise SpecError(f"{args.board}: --method {args.method!r}: no such entry (labels: {labels})")
    tier_name = board.budget.tier
    allowance = tier_trials(tier_name)
    custom = tier_name not in tiers()
    n_trials = allowance if args.trials is None else args.trials
    if n_trials < 1:
        raise SpecError(f"{args.board}: --trials: must be >= 1, got {n_trials}")
    if n_trials > allowance and not custom:
        raise SpecError(f"{args.board}: --trials {n_trials}: tier {tier_name!r} allows {allowance} trial(s) per "
                        f"method; the allowance is part of the budget (use a larger tier)")
    if board.control.kind != "mixing":
        raise SpecError(f"{args.board}: control.kind: tuning compares calibrated endpoints and needs 'mixing', "
                        f"got {board.control.kind!r}")
    store = Store(args.results or results_dir())
    _quiet()
    selections: list[str] = []
    missing = 0
    tier_text = tier_name or "custom"
    for cell in cells:
        print(f"{cell.name}: {n_trials} trial(s), tier {tier_text}, control mixing tau={board.control.tau} "
              f"on {board.control.utility}", flush=True)
        result = search(cell.task.task, cell.task.split, cell.method.method, cell.method.params, board.budget,
                        cell.seed, store, board.control, n_trials)
        for trial in result.trials:
            mark = "*" if trial.index == result.selected else " "
            detail = f" ({trial.error})" if trial.error else ""
            print(f"  {mark} trial {trial.index}: {_fmt_params(trial.params)} | {trial.status}{detail} | "
                  f"alpha={_fmt_number(trial.alpha)} forget_es@alpha={_fmt_number(trial.forget_es)} "
                  f"auc={_fmt_number(trial.auc)} | run {trial.run_id}", flush=True)
        best = result.best
        if best is None:
            missing += 1
            selections.append(f"{cell.name}: no trial finished ok")
        else:
            selections.append(f"{cell.name}: trial {best.index} {{{_fmt_params(best.params)}}} "
                              f"(forget_es@alpha={_fmt_number(best.forget_es)}, run {best.run_id})")
        print(f"  search {result.search_id} -> {result.path}", flush=True)
    print()
    print("selected (lowest calibrated forget ES; ties: higher AUC, then trial order):")
    for line in selections:
        print(f"  {line}")
    return 1 if missing else 0


def cmd_geffect(args: argparse.Namespace) -> int:
    """The G-effect of one method at one checkpoint on one task split (``bench.geffect.cli``)."""
    from bench.geffect.cli import run

    _load_plugins(args.plugin)
    _quiet()
    return run(args.task, args.split, args.method, args.params, args.checkpoint, args.items, args.out)


def cmd_new_method(args: argparse.Namespace) -> int:
    from bench.submit import new_method

    code, entry = new_method(args.name, args.dir)
    print(f"wrote {code} and {entry}")
    print(f"next: edit forget_loss and paper in {code}, fill in {entry}, then run: ubench submit {entry}")
    return 0


def cmd_build_oracle(args: argparse.Namespace) -> int:
    """Fine-tune a preset's base into the retain oracle of (task, split) (and the target, when the preset has no
    published one) on this machine's device, and cache it where runs look for it."""
    import json

    from bench.data.tasks import load_task
    from bench.device import device_name, use_runtime
    from bench.models.presets import apply_to_task, built_path, load_preset, preset_models, preset_tokenizer
    from bench.runner import runtime_for

    _quiet()
    preset = load_preset(args.model)
    data = apply_to_task(preset, load_task(args.task, args.split))
    rt = runtime_for(preset)
    with use_runtime(rt):
        start = time.perf_counter()
        models = preset_models(preset, data, preset_tokenizer(preset))
    for kind, model in models.items():
        built = built_path(preset, data, kind)
        where = f"built at {built}" if str(built) == model.location else f"published: {model.location}"
        print(f"{preset.name} {args.task}/{args.split} {kind}: {where}")
    oracle = models["oracle"].info
    print(json.dumps({"device": device_name(rt.device), "seconds": round(time.perf_counter() - start, 1),
                      "oracle_train_items": oracle.get("train_items"),
                      "oracle_build_seconds": oracle.get("build_seconds")}))
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    """Build (and with --ship, ship) the embedded task's tokenizer, targets and oracles, or verify that a local
    build reproduces the shipped weights (exit 1 where one does not)."""
    from bench.checkpoints import build, ship, verify

    _quiet()
    if args.action == "verify":
        results = verify(args.task, args.split, args.seeds, args.jobs)
        for r in results:
            state = "identical" if r.equal else f"DIFFERENT (max |diff| {r.max_abs_diff:.3g})"
            print(f"{r.name}: shipped {r.shipped[:16]} local {r.built[:16]}: {state}")
        if not results:
            print("no shipped checkpoints to verify")
        return 0 if results and all(r.equal for r in results) else 1
    if args.ship:
        folders = ship(args.task, args.split, args.seeds, args.jobs)
    else:
        from bench.paths import cache_dir

        folders = build(args.task, args.split, args.seeds, cache_dir(), args.jobs)
    for folder in folders:
        print(f"wrote {folder}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from bench.models.presets import load_preset, preset_names

    for name in preset_names():
        preset = load_preset(name)
        unpinned = preset.unpinned()
        pin = f"  unpinned: {', '.join(unpinned)}" if unpinned else ""
        print(f"{name:22s} {preset.description}{pin}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """Freeze the board's current records into ``<out_dir>/releases/<version>/`` (``bench.release``); an unchanged
    board reports its existing release and writes nothing. Missing or failed cells: exit 2 unless
    ``--allow-incomplete``."""
    from bench.leaderboard import write_tables
    from bench.paths import results_dir
    from bench.release import BUNDLE, release
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    _load_plugins(args.plugin)
    board = _with_output(LeaderboardSpec.load(args.board), args)
    _quiet()
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
    from bench.paths import results_dir
    from bench.release import cite, split_board_arg
    from bench.spec import LeaderboardSpec
    from bench.store import Store

    _load_plugins(args.plugin)
    path, version = split_board_arg(args.board)
    board = _with_output(LeaderboardSpec.load(path), args)
    print(cite(board, Store(args.results or results_dir()), version), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ubench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a leaderboard's missing cells, then write its tables")
    run.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    run.add_argument("-k", help="only entries whose name contains this (or matches this glob)")
    run.add_argument("--rerun", action="store_true", help="ignore stored records and run again")
    run.add_argument("-j", "--jobs", type=int, default=0,
                     help="local worker processes (default: the CPU count, at most 4; 1 with a GPU; 1 runs in "
                          "this process); with --executor ray: the most cells in flight (default: no cap)")
    run.add_argument("--executor", choices=["inprocess", "pool", "ray"],
                     help="where cells run: this process, a local worker pool (default), or Ray tasks (one GPU "
                          "per cell where the cluster has GPUs)")
    run.add_argument("--address", help="Ray cluster address for --executor ray (default: a local Ray instance)")
    board = sub.add_parser("board", help="rebuild a leaderboard's tables from stored records only")
    board.add_argument("board")
    for p in (run, board):
        p.add_argument("--results", help="result store folder (default: $UBENCH_RESULTS or ./results)")
        p.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
        p.add_argument("--out", help="folder for the tables (default: <name>/ next to the board file; with "
                                     "--results naming another store, <results>/boards/<name>/ for a committed "
                                     "board)")
    sub.add_parser("docs", help="regenerate docs/metrics.md from the metric registry")
    ls = sub.add_parser("ls", help="list registered methods, metrics or tasks")
    ls.add_argument("what", choices=["methods", "metrics", "tasks"])
    perf = sub.add_parser("perf", help="harness/bare step time ratio; calibration scoring passes per probe; "
                                       "G-effect recording cost; evaluation tokens over the minimum; grid "
                                       "throughput on 2 workers vs 1")
    perf.add_argument("--task", default="synthetic")
    perf.add_argument("--split", default="forget10")
    perf.add_argument("--method", default="ga")
    perf.add_argument("--steps", type=int, default=30)
    perf.add_argument("--repeats", type=int, default=5)
    perf.add_argument("--model", help="model preset for the step benchmark (e.g. smollm2_135m; default: the "
                                      "task's tiny model); the device is $UBENCH_DEVICE (default: a GPU if any)")
    perf.add_argument("--only", choices=["step", "calibration", "geffect", "eval", "grid"],
                      help="run one benchmark (default: all)")
    perf.add_argument("--cells", type=int, default=8,
                      help="grid benchmark: cells, the default board's first entries on synthetic-mini (default: 8)")
    submit = sub.add_parser("submit", help="check a method entry (smoke runs included) and add it to a board")
    submit.add_argument("entry", help="submission entry YAML, e.g. mymethod.entry.yaml")
    submit.add_argument("--board", help="leaderboard YAML (default: leaderboards/synthetic.yaml)")
    submit.add_argument("--task", help="task of the smoke runs (default: synthetic)")
    submit.add_argument("--plugin", help="a Python file registering the method (overrides the entry's plugin)")
    submit.add_argument("--time-limit", type=float, default=900.0, metavar="SECONDS",
                        help="wall-clock limit of the subprocess that runs the entry's code (default: 900)")
    submit.add_argument("--memory-limit", type=float, default=8.0, metavar="GIB",
                        help="address-space limit of that subprocess in GiB, 0 for none (default: 8; not applied "
                             "on CUDA)")
    submit.add_argument("--workdir", help="working directory of that subprocess, kept afterwards (default: a "
                                          "temporary folder, removed)")
    tune = sub.add_parser("tune", help="search each entry's hyper-parameters on calibrated endpoints (tier allowance)")
    tune.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    tune.add_argument("--method", help="only the entry with this label (its display name on the board)")
    tune.add_argument("--trials", type=int, help="trials per entry (default and maximum: the tier's allowance; "
                                                 "any number for a custom budget)")
    tune.add_argument("--results", help="result store folder (default: $UBENCH_RESULTS or ./results)")
    tune.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
    geffect = sub.add_parser("geffect", help="G-effect of a method at a checkpoint on a task split, without a run")
    geffect.add_argument("--task", required=True, help="task name, e.g. synthetic or synthetic-mini")
    geffect.add_argument("--split", required=True, help="forget split, e.g. forget10")
    geffect.add_argument("--method", required=True, help="registered method name, e.g. npo")
    geffect.add_argument("--params", help='hyper-parameters as a JSON object, e.g. \'{"beta": 0.1}\'')
    geffect.add_argument("--checkpoint", help="saved Hugging Face model folder (default: the task's target model)")
    geffect.add_argument("--items", type=int, default=16, help="items per data set (default: 16)")
    geffect.add_argument("--out", help="write the measurement JSON to this file")
    geffect.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
    oracle = sub.add_parser("build-oracle", help="fine-tune a model preset's base into the retain oracle of a "
                                                 "task split (the task's recipe; cached where runs find it)")
    oracle.add_argument("task", help="task name, e.g. tofu")
    oracle.add_argument("split", help="forget split, e.g. forget10")
    oracle.add_argument("--model", required=True, help="model preset (models/NAME.yaml), e.g. tofu_phi15")
    repro = sub.add_parser("reproduce", help="rerun (or read) a board's cells and check them, cell by cell, against a "
                                             "release; exit 1 when its conclusions differ")
    repro.add_argument("board", help="leaderboard YAML, optionally @VERSION (default: the latest release)")
    repro.add_argument("--results", help="result store folder (default: $UBENCH_RESULTS or ./results)")
    repro.add_argument("-j", "--jobs", type=int, default=0, help="worker processes (default: as ubench run)")
    repro.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
    ckpt = sub.add_parser("checkpoints", help="build the embedded task's tokenizer, targets and oracles (--ship: into "
                                              "tasks/<family>/checkpoints/), or verify a local build against them")
    ckpt.add_argument("action", choices=("build", "verify"))
    ckpt.add_argument("task", nargs="?", default="synthetic", help="task name (default: synthetic)")
    ckpt.add_argument("split", nargs="?", default="forget10", help="forget split (default: forget10)")
    ckpt.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="replicate seeds (default: 0 1 2)")
    ckpt.add_argument("--jobs", type=int, default=2, help="build processes (default: 2)")
    ckpt.add_argument("--ship", action="store_true", help="copy the builds into the shipped checkpoints folder")
    sub.add_parser("presets", help="list the model presets and their unpinned checkpoints")
    new = sub.add_parser("new-method", help="write a method file and its submission entry from the template")
    new.add_argument("name", help="registered name of the new method, e.g. my_method")
    new.add_argument("--dir", default=".", help="folder to write NAME.py and NAME.entry.yaml into (default: .)")
    rel = sub.add_parser("release", help="freeze a board's records, spec and tables into a content-hashed, "
                                         "citable release (leaderboards/<name>/releases/<version>/)")
    rel.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    rel.add_argument("--allow-incomplete", action="store_true",
                     help="release even with missing or failed cells (listed in the manifest)")
    cite = sub.add_parser("cite", help="BibTeX for the suite, a board release and its methods' and tasks' papers")
    cite.add_argument("board", help="leaderboard YAML, optionally @VERSION of a release, e.g. "
                                    "leaderboards/synthetic.yaml@7+3f2a9c1d0e (default: the current state)")
    for p in (rel, cite):
        p.add_argument("--results", help="result store folder (default: $UBENCH_RESULTS or ./results)")
        p.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
        p.add_argument("--out", help="the board's tables and releases folder (as for ubench board)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"docs": cmd_docs, "run": cmd_run, "board": cmd_board, "ls": cmd_ls, "perf": cmd_perf,
                "submit": cmd_submit, "new-method": cmd_new_method, "tune": cmd_tune, "geffect": cmd_geffect,
                "build-oracle": cmd_build_oracle, "presets": cmd_presets, "checkpoints": cmd_checkpoints,
                "reproduce": cmd_reproduce,
                "release": cmd_release, "cite": cmd_cite}
    try:
        from bench.store import report_corrupt_records

        with report_corrupt_records():  # one `ubench: warning:` line per corrupt record file
            return handlers[args.command](args)
    except (SpecError, RegistryError, HubUnavailableError) as exc:
        message = " ".join(str(exc).splitlines())  # always one line, whatever raised it
        print(f"ubench: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ubench: interrupted; finished cells are stored, a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
