"""``ubench docs``: regenerate the generated references: ``docs/metrics.md`` and README.md's method table
(``bench.docs``), and ``docs/cli.md`` (``bench.cli.reference``)."""

from __future__ import annotations

import argparse

from bench.cli.reference import write_cli_reference
from bench.docs import write_docs


def cmd_docs(args: argparse.Namespace) -> int:
    for path in [*write_docs(), write_cli_reference()]:
        print(f"wrote {path}")
    return 0
