"""``ubench``: run a leaderboard, rebuild its tables, list what is registered, measure harness overhead.

User errors (bad YAML, unknown names, bad hyper-parameters) print one line ``ubench: error: ...`` and exit 2
before anything is written. A cell that fails while running is stored as failed; the command then exits 1.
``ubench submit`` checks an outside method's entry and adds it to a board (exit 1 when a check fails);
``ubench new-method`` writes a starter method file and its entry. ``ubench tune`` searches each board entry's
hyper-parameters within the budget tier's trial allowance, scoring calibrated endpoints only. ``ubench geffect``
measures the G-effect (arXiv 2502.19301) of a method at a checkpoint on a task split, without a run.
``ubench release`` freezes a board into a content-hashed, citable release and ``ubench cite`` prints its BibTeX
(``bench.release``). ``ubench store migrate`` re-keys records stored before ids carried the code versions.

Answering fast: this module and what it imports load no torch (``tests/test_cli_speed.py``). Each command names its
handler as ``"module:function"`` (``set_defaults(handler=...)``), imported only once the arguments parse (as pip's
command table does), so ``--help``, ``--version`` and a usage error load no stage; a command's ``check``
(``bench.cli.checks``) validates its input (the board file, the method names) before the handler's stage loads.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

import bench
from bench.audit.design import UNLEARNING_METHODS
from bench.cli.checks import check_board, check_method
from bench.data.hub import HubUnavailableError
from bench.registry import RegistryError
from bench.runtime.checkout import git_state
from bench.runtime.paths import PACKAGE_ROOT
from bench.runtime.store import report_corrupt_records
from bench.specs.mapping import SpecError

Handler = Callable[[argparse.Namespace], int]


RESULTS_HELP = "result store folder (default: $UBENCH_RESULTS, else results/ in the checkout, from any folder)"

def _add_run_and_board(sub: argparse._SubParsersAction) -> None:
    """``ubench run`` and ``ubench board``, with the store, plug-in and output options they share."""
    run = sub.add_parser("run", help="run a leaderboard's missing cells, then write its tables")
    run.set_defaults(handler="bench.cli.run:cmd_run", check=check_board)
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
    board.set_defaults(handler="bench.cli.run:cmd_board", check=check_board)
    board.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    for p in (run, board):
        p.add_argument("--results", help=RESULTS_HELP)
        p.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
        p.add_argument("--out", help="folder for the tables (default: <name>/ next to the board file; with "
                                     "--results naming another store, <results>/boards/<name>/ for a committed "
                                     "board)")


def _add_perf(sub: argparse._SubParsersAction) -> None:
    """``ubench perf``: the harness's overhead benchmarks."""
    perf = sub.add_parser("perf", help="harness/bare step time ratio; calibration scoring passes per probe; "
                                       "G-effect recording cost; evaluation tokens over the minimum; grid "
                                       "throughput on 2 workers vs 1")
    perf.set_defaults(handler="bench.cli.perf:cmd_perf")
    perf.add_argument("--task", default="synthetic", help="task of the benchmarks (default: synthetic)")
    perf.add_argument("--split", default="forget10", help="forget split (default: forget10)")
    perf.add_argument("--method", default="ga", help="method of the step, calibration and G-effect benchmarks "
                                                     "(default: ga)")
    perf.add_argument("--steps", type=int, default=30,
                      help="steps timed by the step and G-effect benchmarks (default: 30)")
    perf.add_argument("--repeats", type=int, default=5, help="repeats of the step and G-effect benchmarks (default: 5)")
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
    submit.set_defaults(handler="bench.cli.submit:cmd_submit")
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
    tune.set_defaults(handler="bench.cli.tune:cmd_tune", check=check_board)
    tune.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    tune.add_argument("--method", help="only the entry with this label (its display name on the board)")
    tune.add_argument("--trials", type=int, help="trials per entry (default and maximum: the tier's allowance; "
                                                 "any number for a custom budget)")
    tune.add_argument("--results", help=RESULTS_HELP)
    tune.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
    geffect = sub.add_parser("geffect", help="G-effect of a method at a checkpoint on a task split, without a run")
    geffect.set_defaults(handler="bench.cli.geffect:cmd_geffect", check=check_method)
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
    oracle.set_defaults(handler="bench.cli.models:cmd_build_oracle")
    oracle.add_argument("task", help="task name, e.g. tofu")
    oracle.add_argument("split", help="forget split, e.g. forget10")
    oracle.add_argument("--model", required=True, help="model preset (models/NAME.yaml), e.g. tofu_phi15")
    repro = sub.add_parser("reproduce", help="rerun (or read) a board's cells and check them, cell by cell, against a "
                                             "release; exit 1 when its conclusions differ")
    repro.set_defaults(handler="bench.cli.release:cmd_reproduce")
    repro.add_argument("board", help="leaderboard YAML, optionally @VERSION (default: the latest release)")
    repro.add_argument("--results", help=RESULTS_HELP)
    repro.add_argument("-j", "--jobs", type=int, default=0, help="worker processes (default: as ubench run)")
    repro.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")


def _add_models_and_new_method(sub: argparse._SubParsersAction) -> None:
    """``ubench checkpoints``, ``ubench presets`` and ``ubench new-method``."""
    ckpt = sub.add_parser("checkpoints", help="build the embedded task's tokenizer, targets and oracles (--ship: into "
                                              "tasks/<family>/checkpoints/), or verify a local build against them")
    ckpt.set_defaults(handler="bench.cli.models:cmd_checkpoints")
    ckpt.add_argument("action", choices=("build", "verify"),
                      help="build: train them (with --ship, into the shipped folder); verify: build locally and "
                           "compare with the shipped weights (exit 1 where one differs)")
    ckpt.add_argument("task", nargs="?", default="synthetic", help="task name (default: synthetic)")
    ckpt.add_argument("split", nargs="?", default="forget10", help="forget split (default: forget10)")
    ckpt.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="replicate seeds (default: 0 1 2)")
    ckpt.add_argument("--jobs", type=int, default=2, help="build processes (default: 2)")
    ckpt.add_argument("--ship", action="store_true", help="copy the builds into the shipped checkpoints folder")
    presets = sub.add_parser("presets", help="list the model presets and their unpinned checkpoints")
    presets.set_defaults(handler="bench.cli.models:cmd_presets")
    new = sub.add_parser("new-method", help="write a method file and its submission entry from the template")
    new.set_defaults(handler="bench.cli.submit:cmd_new_method")
    new.add_argument("name", help="registered name of the new method, e.g. my_method")
    new.add_argument("--dir", default=".", help="folder to write NAME.py and NAME.entry.yaml into (default: .)")


def _add_release_and_cite(sub: argparse._SubParsersAction) -> None:
    """``ubench release`` and ``ubench cite``, with the store, plug-in and output options they share."""
    rel = sub.add_parser("release", help="freeze a board's records, spec and tables into a content-hashed, "
                                         "citable release (leaderboards/<name>/releases/<version>/)")
    rel.set_defaults(handler="bench.cli.release:cmd_release", check=check_board)
    rel.add_argument("board", help="leaderboard YAML, e.g. leaderboards/synthetic.yaml")
    rel.add_argument("--allow-incomplete", action="store_true",
                     help="release even with missing or failed cells (listed in the manifest)")
    cite = sub.add_parser("cite", help="BibTeX for the suite, a board release and its methods' and tasks' papers")
    cite.set_defaults(handler="bench.cli.release:cmd_cite")
    cite.add_argument("board", help="leaderboard YAML, optionally @VERSION of a release, e.g. "
                                    "leaderboards/synthetic.yaml@7+3f2a9c1d0e (default: the current state)")
    for p in (rel, cite):
        p.add_argument("--results", help=RESULTS_HELP)
        p.add_argument("--plugin", action="append", default=[], help="a Python file registering methods")
        p.add_argument("--out", help="the board's tables and releases folder (as for ubench board)")


def _add_store(sub: argparse._SubParsersAction) -> None:
    """``ubench store migrate``: re-key the records stored before the ids carried the code versions."""
    store = sub.add_parser("store", help="maintain a result store: migrate re-keys the records stored before run "
                                         "ids carried the method and metric versions (the old folders are kept)")
    store.set_defaults(handler="bench.cli.store:cmd_store")
    store.add_argument("action", choices=["migrate"], help="migrate: re-key the old records")
    store.add_argument("--store", help=RESULTS_HELP + "; the shared "
                                       "reference cache is one too (<cache>/refs)")
    store.add_argument("-v", "--verbose", action="store_true", help="one line per record, left alone or not")


def _add_audit(sub: argparse._SubParsersAction) -> None:
    """``ubench audit``: the metric audit (``bench.audit``)."""
    audit = sub.add_parser("audit", help="audit the metrics: faithfulness (knows vs never-learned pools) and "
                                         "robustness under every model/prompt attack, with intervals")
    audit.set_defaults(handler="bench.cli.audit:cmd_audit")
    audit.add_argument("task", help="a task, e.g. synthetic (its shipped replicate models)")
    audit.add_argument("--split", default="forget10", help="forget split (default: forget10)")
    audit.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="replicate seeds (default: 0 1 2)")
    audit.add_argument("--budget", default="standard", help="tier of the unlearned pool (default: standard)")
    audit.add_argument("--methods", nargs="+", default=list(UNLEARNING_METHODS),
                       help=f"unlearning methods (default: {' '.join(UNLEARNING_METHODS)})")
    audit.add_argument("--mini", action="store_true", help="one seed, three methods, two variants (seconds)")
    audit.add_argument("--out", help="folder for audit.{json,md,csv} and plots (default: leaderboards/audit/TASK)")


def _add_docs_and_ls(sub: argparse._SubParsersAction) -> None:
    """``ubench docs`` and ``ubench ls``: one listing per kind of registered thing."""
    docs = sub.add_parser("docs", help="regenerate docs/metrics.md, docs/cli.md and README.md's method table from "
                                       "the registries and this parser")
    docs.set_defaults(handler="bench.cli.docs:cmd_docs")
    ls = sub.add_parser("ls", help="list the registered methods, metrics or tasks, or the budget tiers")
    kinds = ls.add_subparsers(dest="what", required=True, metavar="{methods,metrics,tasks,tiers}")
    methods = kinds.add_parser("methods", help="every method (or one): its objective, parameters with defaults and "
                                               "search space, paper, version and origin")
    methods.set_defaults(handler="bench.cli.method_info:cmd_ls_methods")
    methods.add_argument("name", nargs="?", help="only this method")
    kinds.add_parser("metrics", help="every metric, one line each").set_defaults(
        handler="bench.cli.info:cmd_ls_metrics")
    kinds.add_parser("tasks", help="the task families and the tasks").set_defaults(
        handler="bench.cli.info:cmd_ls_tasks")
    tiers = kinds.add_parser("tiers", help="every budget tier (or one) with its fields")
    tiers.set_defaults(handler="bench.cli.info:cmd_ls_tiers")
    tiers.add_argument("name", nargs="?", help="only this tier")


def version_text() -> str:
    """``ubench VERSION (PACKAGE FOLDER)``, then, in a git checkout, ``git COMMIT`` and ``dirty`` when it has
    uncommitted changes (``bench.runtime.checkout.git_state``)."""
    state = git_state()
    git = f", git {state.commit}{', dirty' if state.dirty else ''}" if state.commit else ""
    return f"ubench {bench.__version__} ({PACKAGE_ROOT}{git})"


class _Version(argparse.Action):
    """``--version``: print ``version_text()`` (computed only when asked: it runs git) and exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(version_text())  # on stdout, as argparse's own version action prints
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``ubench`` argument parser: one sub-command per handler of ``main``, in the order ``--help`` lists."""
    parser = argparse.ArgumentParser(prog="ubench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version,
                        help="print the package version, and the git commit and dirty flag of a checkout, and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_and_board(sub)
    _add_docs_and_ls(sub)
    _add_perf(sub)
    _add_submit(sub)
    _add_tune_and_geffect(sub)
    _add_oracle_and_reproduce(sub)
    _add_models_and_new_method(sub)
    _add_release_and_cite(sub)
    _add_store(sub)
    _add_audit(sub)
    return parser


def load_handler(path: str) -> Handler:
    """The handler function named by ``"module:function"``, importing its module (and the stage it needs)."""
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, check the command's input, then run its handler. Exit code: the handler's (0, or 1 where a
    cell or a check failed), 2 on bad input (one ``ubench: error:`` line), 130 when interrupted."""
    args = build_parser().parse_args(argv)
    try:
        with report_corrupt_records():  # one `ubench: warning:` line per corrupt record file
            if getattr(args, "check", None):
                args.check(args)
            return load_handler(args.handler)(args)
    except (SpecError, RegistryError, HubUnavailableError) as exc:
        message = " ".join(str(exc).splitlines())  # always one line, whatever raised it
        print(f"ubench: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ubench: interrupted; finished cells are stored, a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
