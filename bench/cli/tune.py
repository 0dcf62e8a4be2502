"""``ubench tune``: a calibrated hyper-parameter search per board entry, within the tier's trial allowance."""

from __future__ import annotations

import argparse

from bench.cli.common import load_plugins
from bench.grid.cells import plan
from bench.grid.search import search
from bench.runtime.logs import quiet
from bench.runtime.paths import results_dir
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError
from bench.specs.tiers import tier_trials, tiers


def _fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _fmt_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_tune(args: argparse.Namespace) -> int:
    """For each (task, method entry, seed) of the board, run a calibrated hyper-parameter search and print every
    trial (params, status, alpha, calibrated forget ES, AUC; ``*`` marks the selected one) and the selections.
    Exit 0 when every search selected a trial, 1 when some search had no ``ok`` trial."""
    load_plugins(args.plugin)
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
    quiet()
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
        print(f"  search {result.id} -> {store.search_path(result.id)}", flush=True)
    print()
    print("selected (lowest calibrated forget ES; ties: higher AUC, then trial order):")
    for line in selections:
        print(f"  {line}")
    return 1 if missing else 0
