"""``ubench submit`` (check an outside method's entry and add it to a board) and ``ubench new-method`` (scaffold
one)."""

from __future__ import annotations

import argparse

from bench.runtime.logs import quiet
from bench.submit.sandbox import GIB, SandboxLimits
from bench.submit.scaffold import new_method
from bench.submit.validate import validate_and_submit


def cmd_submit(args: argparse.Namespace) -> int:
    quiet()
    def echo(line: str) -> None:
        print(line, flush=True)


    limits = SandboxLimits(time_limit=args.time_limit, memory_limit=int(args.memory_limit * GIB))
    report = validate_and_submit(args.entry, args.board, args.task, args.plugin, echo=echo, limits=limits,
                                 workdir=args.workdir)
    return 0 if report.ok else 1


def cmd_new_method(args: argparse.Namespace) -> int:
    code, entry = new_method(args.name, args.dir)
    print(f"wrote {code} and {entry}")
    print(f"next: edit forget_loss and paper in {code}, fill in {entry}, then run: ubench submit {entry}")
    return 0
