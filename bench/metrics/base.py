"""What a metric is: a registered declaration of its direction, aggregation and the inputs it reads.

Two kinds:

* ``ItemMetric``: a per-item value computed from one split's ``SplitScores``; aggregated by mean over items
  (standard error reported with it). Its ``direction`` is the direction of *better* on data the model should know
  (retain, utility); ``forget_direction`` is the direction of better on the forget split.
* ``ModelMetric``: one number per model from the per-item values of several splits and, when ``needs_oracle``,
  the retain oracle's per-item values (forget quality). A missing oracle is an error, never a silent None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench.metrics.engine import SplitScores

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricValue:
    value: float
    stderr: float | None
    n: int
    split: str


@dataclass(frozen=True)
class ItemMetric:
    name: str
    description: str
    direction: Direction
    forget_direction: Direction
    per_item: Callable[[SplitScores], np.ndarray]

    def aggregate(self, values: np.ndarray, split: str) -> MetricValue:
        """Mean over items with its standard error s / sqrt(n)."""
        n = len(values)
        stderr = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else None
        return MetricValue(float(np.mean(values)) if n else float("nan"), stderr, n, split)


@dataclass(frozen=True)
class ModelMetric:
    name: str
    description: str
    direction: Direction
    needs_oracle: bool
    compute: Callable[[Mapping[str, Mapping[str, np.ndarray]], Mapping[str, Mapping[str, np.ndarray]] | None], float]


class MissingReferenceError(RuntimeError):
    """A reference-relative metric was asked for without its reference (retain oracle) results."""
