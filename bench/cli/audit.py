"""``ubench audit``: the metric audit (``bench.audit``): faithfulness and robustness of every registered metric."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.audit.pools import UNLEARNING_METHODS, VARIANTS
from bench.audit.report import run_audit, write_audit
from bench.runtime.logs import quiet
from bench.runtime.paths import REPO_ROOT

MINI = {"seeds": [0], "methods": ["ga", "npo", "rmu"], "variants": 2}  # --mini: the test suite's audit


def add_audit(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="audit the metrics: faithfulness (knows vs never-learned pools) and "
                                         "robustness under every model/prompt attack, with intervals")
    audit.add_argument("task", help="a task, e.g. synthetic (its shipped replicate models)")
    audit.add_argument("--split", default="forget10", help="forget split (default: forget10)")
    audit.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="replicate seeds (default: 0 1 2)")
    audit.add_argument("--budget", default="standard", help="tier of the unlearned pool (default: standard)")
    audit.add_argument("--methods", nargs="+", default=list(UNLEARNING_METHODS), help="unlearning methods")
    audit.add_argument("--mini", action="store_true", help="one seed, three methods, two variants (seconds)")
    audit.add_argument("--out", help="folder for audit.{json,md,csv} and plots (default: leaderboards/audit/TASK)")


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
