"""``ubench ls`` (what is registered) and ``ubench docs`` (regenerate ``docs/metrics.md`` and the README's method
table)."""

from __future__ import annotations

import argparse

from bench.data.tasks import task_names
from bench.docs import write_docs
from bench.registry import METHODS, METRICS, TASKS


def cmd_ls(args: argparse.Namespace) -> int:
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
    for path in write_docs():
        print(f"wrote {path}")
    return 0
