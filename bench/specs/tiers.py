"""Named budget tiers (``smoke`` < ``standard`` < ``full``), declared in ``tiers.yaml`` next to this file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.specs.mapping import SpecError, from_mapping, read_yaml
from bench.specs.run import Budget

TIERS_FILE = Path(__file__).with_name("tiers.yaml")


@dataclass(frozen=True)
class Allowances:
    """The board-level allowances of a tier (not part of a run's Budget): the seeds a board runs by default and the
    hyper-parameter trials per method."""

    seeds: int = 1
    trials: int = 1

    def __post_init__(self) -> None:
        for name in ("seeds", "trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")


TIER_ONLY = tuple(f.name for f in dataclasses.fields(Allowances))


@cache
def _read() -> dict[str, tuple[Budget, Allowances]]:
    """Tier name -> (its Budget, its allowances), validated: a tier is a mapping of Budget and Allowances fields."""
    source = str(TIERS_FILE)
    out = {}
    for name, body in read_yaml(TIERS_FILE).items():
        if not isinstance(body, dict):
            raise SpecError(f"{source}: {name}: expected a mapping, got {type(body).__name__} {body!r}")
        budget = {key: value for key, value in body.items() if key not in TIER_ONLY}
        allowances = from_mapping(Allowances, {k: v for k, v in body.items() if k in TIER_ONLY}, source, name)
        out[name] = (dataclasses.replace(from_mapping(Budget, budget, source, name), tier=name), allowances)
    return out


def tiers() -> dict[str, Budget]:
    """Tier name -> Budget (with ``tier`` set to the name), in the file's order (smallest first)."""
    return {name: budget for name, (budget, _) in _read().items()}


def tier_seeds(name: str) -> int:
    """Seeds a board on tier ``name`` runs by default (1 for a custom budget)."""
    return _read()[name][1].seeds if name in _read() else 1


def tier_trials(name: str) -> int:
    """Hyper-parameter trials per method the tier allows (1: the declared defaults only)."""
    return _read()[name][1].trials if name in _read() else 1


def tier(name: str, source: str = "", path: str = "budget") -> Budget:
    """The Budget of tier ``name``; an unknown name raises ``SpecError`` listing the known tiers."""
    known = tiers()
    if name not in known:
        where = f"{source}: {path}: " if source else ""
        raise SpecError(f"{where}unknown budget tier {name!r} (known: {', '.join(known)})")
    return known[name]


def smallest_tier() -> Budget:
    return next(iter(tiers().values()))
