"""``ubench audit``: the metric audit (``bench.audit``): faithfulness and robustness of every registered metric."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.audit.design import VARIANTS
from bench.audit.report import run_audit, write_audit
from bench.runtime.logs import quiet
from bench.runtime.paths import REPO_ROOT

MINI = {"seeds": [0], "methods": ["ga", "npo", "rmu"], "variants": 2}  # --mini: the test suite's audit


def cmd_audit(args: argparse.Namespace) -> int:
    quiet()
    seeds, methods, variants = args.seeds, args.methods, VARIANTS
    if args.mini:
        seeds, methods, variants = MINI["seeds"], MINI["methods"], VARIANTS[:MINI["variants"]]
    record = run_audit(args.task, args.split, seeds, args.budget, methods, variants,
                       log=lambda line: print(line, flush=True))
    out = Path(args.out) if args.out else REPO_ROOT / "leaderboards" / "audit" / args.task
    write_audit(record, out)
    print((out / "audit.md").read_text(), flush=True)
    print(f"audit {record['id']} of {record['task']} in {record['seconds']} s: wrote {out}", flush=True)
    return 0
