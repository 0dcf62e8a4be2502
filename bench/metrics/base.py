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


BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class MetricValue:
    value: float
    stderr: float | None
    n: int
    split: str
    ci_low: float | None = None  # bootstrap 95% interval of the mean over items (percentile method)
    ci_high: float | None = None


def bootstrap_interval(values: np.ndarray, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | tuple[None, None]:
    """Percentile bootstrap interval of the mean: resample the n items with replacement ``resamples`` times
    (seeded, so a record's interval is reproducible from its stored per-item values), take the (1 - level)/2 and
    (1 + level)/2 quantiles of the resampled means. None for fewer than 2 items or non-finite values."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2 or not np.all(np.isfinite(values)):
        return None, None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


QA_ROLES = ("forget", "retain", "utility", "holdout")
ALL_ROLES = (*QA_ROLES, "text")


@dataclass(frozen=True)
class ItemMetric:
    name: str
    description: str
    direction: Direction
    forget_direction: Direction
    per_item: Callable[[SplitScores], np.ndarray]
    source: str = ""  # the paper that defines it
    roles: tuple[str, ...] = QA_ROLES  # the split roles it is defined on (``SplitScores.role``)
    requires: str | None = None  # a ``SplitScores`` field that must be present (e.g. "grad_norm")

    def applies(self, scores: SplitScores) -> bool:
        """Whether the metric is defined on this split's scores."""
        return scores.role in self.roles and (self.requires is None or getattr(scores, self.requires) is not None)

    def aggregate(self, values: np.ndarray, split: str) -> MetricValue:
        """Mean over items with its standard error s / sqrt(n) and a bootstrap 95% interval over items."""
        n = len(values)
        stderr = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else None
        low, high = bootstrap_interval(values)
        return MetricValue(float(np.mean(values)) if n else float("nan"), stderr, n, split, low, high)


@dataclass(frozen=True)
class ModelMetric:
    name: str
    description: str
    direction: Direction
    needs_oracle: bool
    compute: Callable[[Mapping[str, Mapping[str, np.ndarray]], Mapping[str, Mapping[str, np.ndarray]] | None], float]
    source: str = ""


class MissingReferenceError(RuntimeError):
    """A reference-relative metric was asked for without its reference (retain oracle) results."""
