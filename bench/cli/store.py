"""``ubench store migrate``: re-key the records stored before run and reference ids carried the method's and the
metrics' versions (``bench.run.migrate``)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.run.migrate import migrate_store
from bench.runtime.paths import results_dir
from bench.runtime.records import ReferenceRecord, RunRecord
from bench.runtime.store import Store
from bench.specs.mapping import SpecError


def cmd_store(args: argparse.Namespace) -> int:
    """Migrate the store (``--store``, default the result store): one line per record re-keyed or left alone with
    its reason under ``--verbose``, else the re-keyed ones and a count per outcome."""
    root = Path(args.store) if args.store else results_dir()
    store = Store(root)
    if not store.ids(RunRecord.FOLDER) and not store.ids(ReferenceRecord.FOLDER):
        raise SpecError(f"{root}: --store: no result store here (no run or reference record)")
    done = migrate_store(store)
    for migration in done:
        if args.verbose or migration.reason == "re-keyed":
            print(migration.line())
    counts = Counter(f"{m.kind} {m.reason.split(':')[0]}" for m in done)
    print(f"{root}: " + "; ".join(f"{n} {what}" for what, n in sorted(counts.items())))
    return 0
