"""``ubench ls metrics``, ``ubench ls tasks`` and ``ubench ls tiers``: what is registered or declared, read without
loading torch where the listing allows (tasks and tiers; the metric modules load it). ``ubench ls methods`` is
``bench.cli.method_info``."""

from __future__ import annotations

import argparse
import dataclasses

from tabulate import tabulate

from bench.data.tasks import task_names
from bench.registry import METRICS, TASKS
from bench.specs.run import Budget
from bench.specs.tiers import tier, tier_seeds, tier_trials, tiers

ALLOWANCES = {"seeds": tier_seeds, "trials": tier_trials}  # a tier's fields outside its Budget (``TIER_ONLY``)
TIERS_NOTE = ("Budget tiers (bench/specs/tiers.yaml): what every method of a board on the tier gets (the fields of "
              "a run's Budget), then the board's allowances (seeds, and hyper-parameter trials per method).")


def cmd_ls_metrics(args: argparse.Namespace) -> int:
    """One line per registered metric: its name and description."""
    for name in METRICS.names():
        entry = METRICS.get(name)
        doc = getattr(entry, "description", None) or (entry.__doc__ or "").strip().splitlines()[0]
        print(f"{name:16s} {doc}")
    return 0


def cmd_ls_tasks(args: argparse.Namespace) -> int:
    """The registered task families and the declared tasks."""
    print("task families:", ", ".join(TASKS.names()))
    print("tasks:", ", ".join(task_names()))
    return 0


def tier_table(names: list[str]) -> str:
    """One row per field of a tier (the Budget's fields but ``tier``, then the allowances), one column per tier."""
    budgets = {name: tier(name) for name in names}
    fields = [f.name for f in dataclasses.fields(Budget) if f.name != "tier"]
    rows = [[field, *(getattr(budget, field) for budget in budgets.values())] for field in fields]
    rows += [[field, *(allowance(name) for name in names)] for field, allowance in ALLOWANCES.items()]
    return tabulate(rows, headers=["field", *names], tablefmt="simple", disable_numparse=True)


def cmd_ls_tiers(args: argparse.Namespace) -> int:
    """Every budget tier (or the one named, an unknown name being a one-line error) with all its fields."""
    names = [args.name] if args.name else list(tiers())
    table = tier_table(names)
    print(TIERS_NOTE)
    print()
    print(table)
    return 0
