"""``ubench``: run a leaderboard, rebuild its tables, list what is registered, measure harness overhead.

User errors (bad YAML, unknown names, bad hyper-parameters) print one line ``ubench: error: ...`` and exit 2
before anything is written. A cell that fails while running is stored as failed; the command then exits 1.
``ubench submit`` checks an outside method's entry and adds it to a board (exit 1 when a check fails);
``ubench new-method`` writes a starter method file and its entry. ``ubench tune`` searches each board entry's
hyper-parameters within the budget tier's trial allowance, scoring calibrated endpoints only. ``ubench geffect``
measures the G-effect (arXiv 2502.19301) of a method at a checkpoint on a task split, without a run.
``ubench release`` freezes a board into a content-hashed, citable release and ``ubench cite`` prints its BibTeX
(``bench.release``). ``ubench store migrate`` re-keys records stored before ids carried the code versions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.cli.audit import add_audit, cmd_audit
from bench.cli.geffect import cmd_geffect
from bench.cli.info import cmd_docs, cmd_ls
from bench.cli.models import cmd_build_oracle, cmd_checkpoints, cmd_presets
from bench.cli.perf import cmd_perf
from bench.cli.release import cmd_cite, cmd_release, cmd_reproduce
from bench.cli.run import cmd_board, cmd_run
from bench.cli.store import cmd_store
from bench.cli.submit import cmd_new_method, cmd_submit
from bench.cli.tune import cmd_tune
from bench.data.hub import HubUnavailableError
from bench.registry import RegistryError
from bench.runtime.store import report_corrupt_records
from bench.specs.mapping import SpecError


def _add_run_and_board(sub: argparse._SubParsersAction) -> None:
    """``ubench run`` and ``ubench board``, with the store, plug-in and output options they share."""
    run = sub.add_parser("run", help="run a leaderboard's missing cells, then write its tables")
    run.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    run.add_argument("-k", help="only the entries that `pytest BOARD -k EXPRESSION` runs, e.g. 'GA or NPO', 'not GA'")
    run.add_argument("--rerun", action="store_true", help="ignore stored records and run again")
    run.add_argument("--keep-models", action="store_true",
                     help="save each run's final and calibrated models next to its record (runs/<id>/models/), "
                          "as the board option keep_models: true does")
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


def _add_perf(sub: argparse._SubParsersAction) -> None:
    """``ubench perf``: the harness's overhead benchmarks."""
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
    perf.add_argument("--only", choices=["step", "calibration", "geffect", "eval", "attacks", "grid", "cells"],
                      help="run one benchmark (default: all but cells); cells: the per-phase seconds of a board's "
                           "stored records (no run)")
    perf.add_argument("--board", default="leaderboards/synthetic.yaml",
                      help="cells: the board whose records to summarise (default: leaderboards/synthetic.yaml)")
    perf.add_argument("--cells", type=int, default=8,
                      help="grid benchmark: cells, the default board's first entries on synthetic-mini (default: 8)")


def _add_submit(sub: argparse._SubParsersAction) -> None:
    """``ubench submit``: an entry's checks, run in a sandboxed subprocess with these limits."""
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


def _add_tune_and_geffect(sub: argparse._SubParsersAction) -> None:
    """``ubench tune`` (hyper-parameter search per entry) and ``ubench geffect`` (one measurement, no run)."""
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


def _add_oracle_and_reproduce(sub: argparse._SubParsersAction) -> None:
    """``ubench build-oracle`` (a preset's retain oracle) and ``ubench reproduce`` (cells against a release)."""
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


def _add_models_and_new_method(sub: argparse._SubParsersAction) -> None:
    """``ubench checkpoints``, ``ubench presets`` and ``ubench new-method``."""
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


def _add_release_and_cite(sub: argparse._SubParsersAction) -> None:
    """``ubench release`` and ``ubench cite``, with the store, plug-in and output options they share."""
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


def _add_store(sub: argparse._SubParsersAction) -> None:
    """``ubench store migrate``: re-key the records stored before the ids carried the code versions."""
    store = sub.add_parser("store", help="maintain a result store: migrate re-keys the records stored before run "
                                         "ids carried the method and metric versions (the old folders are kept)")
    store.add_argument("action", choices=["migrate"])
    store.add_argument("--store", help="result store folder (default: $UBENCH_RESULTS or ./results); the shared "
                                       "reference cache is one too (<cache>/refs)")
    store.add_argument("-v", "--verbose", action="store_true", help="one line per record, left alone or not")


def build_parser() -> argparse.ArgumentParser:
    """The ``ubench`` argument parser: one sub-command per handler of ``main``, in the order ``--help`` lists."""
    parser = argparse.ArgumentParser(prog="ubench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_and_board(sub)
    sub.add_parser("docs", help="regenerate docs/metrics.md and README.md's method table from the registries")
    ls = sub.add_parser("ls", help="list registered methods, metrics or tasks")
    ls.add_argument("what", choices=["methods", "metrics", "tasks"])
    _add_perf(sub)
    _add_submit(sub)
    _add_tune_and_geffect(sub)
    _add_oracle_and_reproduce(sub)
    _add_models_and_new_method(sub)
    _add_release_and_cite(sub)
    _add_store(sub)
    add_audit(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"docs": cmd_docs, "run": cmd_run, "board": cmd_board, "ls": cmd_ls, "perf": cmd_perf,
                "submit": cmd_submit, "new-method": cmd_new_method, "tune": cmd_tune, "geffect": cmd_geffect,
                "build-oracle": cmd_build_oracle, "presets": cmd_presets, "checkpoints": cmd_checkpoints,
                "reproduce": cmd_reproduce,
                "release": cmd_release, "cite": cmd_cite, "store": cmd_store, "audit": cmd_audit}
    try:
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
