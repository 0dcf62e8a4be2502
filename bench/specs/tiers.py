"""Named budget tiers (``smoke`` < ``standard`` < ``full``), declared in ``tiers.yaml`` next to this file."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

from bench.specs.mapping import SpecError, from_mapping, read_yaml
from bench.specs.run import Budget

TIERS_FILE = Path(__file__).with_name("tiers.yaml")


TIER_ONLY = ("seeds", "trials")  # board-level allowances of a tier (not part of a run's Budget)


@cache
def _read() -> dict[str, tuple[Budget, dict[str, int]]]:
    data = read_yaml(TIERS_FILE)
    out = {}
    for name, body in data.items():
        body = dict(body)
        allowances = {key: int(body.pop(key, 1)) for key in TIER_ONLY}
        for key, value in allowances.items():
            if value < 1:
                raise SpecError(f"{TIERS_FILE}: {name}.{key}: must be >= 1, got {value}")
        out[name] = (dataclasses.replace(from_mapping(Budget, body, str(TIERS_FILE), name), tier=name), allowances)
    return out


def tiers() -> dict[str, Budget]:
    """Tier name -> Budget (with ``tier`` set to the name), in the file's order (smallest first)."""
    return {name: budget for name, (budget, _) in _read().items()}


def tier_seeds(name: str) -> int:
    """Seeds a board on tier ``name`` runs by default (1 for a custom budget)."""
    return _read()[name][1]["seeds"] if name in _read() else 1


def tier_trials(name: str) -> int:
    """Hyper-parameter trials per method the tier allows (1: the declared defaults only)."""
    return _read()[name][1]["trials"] if name in _read() else 1


def tier(name: str, source: str = "", path: str = "budget") -> Budget:
    """The Budget of tier ``name``; an unknown name raises ``SpecError`` listing the known tiers."""
    known = tiers()
    if name not in known:
        where = f"{source}: {path}: " if source else ""
        raise SpecError(f"{where}unknown budget tier {name!r} (known: {', '.join(known)})")
    return known[name]


def smallest_tier() -> Budget:
    return next(iter(tiers().values()))
