"""Named budget tiers (``smoke`` < ``standard`` < ``full``), declared in ``tiers.yaml`` next to this file."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

from bench.spec import Budget, SpecError, from_mapping, read_yaml

TIERS_FILE = Path(__file__).with_name("tiers.yaml")


@cache
def tiers() -> dict[str, Budget]:
    """Tier name -> Budget (with ``tier`` set to the name), in the file's order (smallest first)."""
    data = read_yaml(TIERS_FILE)
    return {name: dataclasses.replace(from_mapping(Budget, body, str(TIERS_FILE), name), tier=name)
            for name, body in data.items()}


def tier(name: str, source: str = "", path: str = "budget") -> Budget:
    """The Budget of tier ``name``; an unknown name raises ``SpecError`` listing the known tiers."""
    known = tiers()
    if name not in known:
        where = f"{source}: {path}: " if source else ""
        raise SpecError(f"{where}unknown budget tier {name!r} (known: {', '.join(known)})")
    return known[name]


def smallest_tier() -> Budget:
    return next(iter(tiers().values()))
