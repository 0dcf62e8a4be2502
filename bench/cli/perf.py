"""``ubench perf``: the harness's overhead benchmarks (``bench.perf``)."""

from __future__ import annotations

import argparse

from bench.perf.attacks import attack_cost
from bench.perf.calibration import calibration_cost
from bench.perf.cells import cell_breakdown
from bench.perf.evaluation import eval_cost
from bench.perf.geffect import geffect_cost
from bench.perf.grid import grid_throughput
from bench.perf.step import step_overhead
from bench.runtime.logs import quiet
from bench.runtime.paths import results_dir
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec


def cmd_perf(args: argparse.Namespace) -> int:
    quiet()
    if args.only == "cells":
        print(cell_breakdown(LeaderboardSpec.load(args.board), Store(results_dir())).text(), flush=True)
        return 0
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
        print(eval_cost(args.task, args.split).text(), flush=True)
    if args.only in (None, "attacks"):
        print(attack_cost(args.task, args.split).text(), flush=True)
    if args.only in (None, "grid"):
        print(grid_throughput(cells=args.cells).text(), flush=True)
    return 0
