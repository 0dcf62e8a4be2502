"""What a metric is: a registered declaration of its direction, aggregation and the inputs it reads.

Two kinds:

* ``ItemMetric``: a per-item value computed from one split's ``SplitScores``; aggregated by mean over items
  (standard error reported with it). Its ``direction`` is the direction of *better* on data the model should know
  (retain, utility); ``forget_direction`` is the direction of better on the forget split.
* ``ModelMetric``: one number per model from the per-item values of several splits and, when ``needs_oracle``,
  the retain oracle's per-item values (forget quality). A missing oracle is an error, never a silent None.

A direction is ``higher`` or ``lower`` (monotone), or ``zero`` / ``half``: best at an ideal value, 0 or 0.5, and
worse the farther from it on either side (MUSE PrivLeak is ideal at 0, a membership AUC at 0.5: a forget set that
looks *less* familiar than never-seen data is a leak too, over-unlearning). ``distance_to_ideal`` gives |v - ideal|.

Every metric declares a ``version``: bump it when a change can change its numbers. Run and reference ids include
the versions of the metrics their task evaluates (``evaluated_on``: the split roles the task's family declares), so
a bump invalidates exactly the records of those tasks (``bench.metrics.identity``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench.metrics.engine import SplitScores

Direction = Literal["higher", "lower", "zero", "half"]
IDEALS: dict[str, float] = {"zero": 0.0, "half": 0.5}  # the directions that are best at a value


def distance_to_ideal(direction: str, value: float) -> float:
    """|value - ideal| for the ``zero`` / ``half`` directions (smaller is better); ``ValueError`` for the others."""
    if direction not in IDEALS:
        raise ValueError(f"direction {direction!r} has no ideal value (one of {', '.join(IDEALS)})")
    return abs(value - IDEALS[direction])


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
    # the metric on each of the evaluation's shared item draws (``bootstrap_draws``): what the board's hierarchical
    # bootstrap over seeds and items resamples; None where the evaluation has no draws (fewer than 2 items)
    replicates: np.ndarray | None = None


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
# the SplitScores field holding each engine product (None when the split was scored without it)
PRODUCT_FIELDS = {"answer": "answer", "paraphrase": "paraphrase_nll", "perturbed": "perturbed_nll",
                  "rephrased": "answer_rephrased", "generation": "generations"}
ALL_ROLES = (*QA_ROLES, "text")


MODEL_BOOTSTRAP_RESAMPLES = 200  # model metrics recompute a KS test or AUCs per resample: fewer resamples


class _ResampledSplit(Mapping):
    """One split's per-item arrays, each indexed by the split's draw when first read (then kept): a model metric
    reads one or two of a split's ~30 arrays, so resampling only those is what keeps 200 resamples cheap."""

    def __init__(self, inner: Mapping[str, np.ndarray], draw: np.ndarray) -> None:
        self.inner, self.draw, self.cache = inner, draw, {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.cache:
            value = self.inner[name]
            self.cache[name] = np.asarray(value)[self.draw] if len(value) == len(self.draw) else value
        return self.cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self.inner

    def __iter__(self):
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class _Resampled(Mapping):
    """A lazy view of per-item values ``{split: {metric: array}}`` with every array of a split indexed by that
    split's draw on access (a model metric reads a few arrays; copying all of them per resample would dominate)."""

    def __init__(self, values: Mapping[str, Mapping[str, np.ndarray]], draw: Mapping[str, np.ndarray]) -> None:
        self.values, self.draw = values, draw
        self.splits: dict[str, Mapping[str, np.ndarray]] = {}

    def __getitem__(self, split: str) -> Mapping[str, np.ndarray]:
        if split not in self.splits:
            inner, draw = self.values[split], self.draw.get(split)
            self.splits[split] = inner if draw is None else _ResampledSplit(inner, draw)
        return self.splits[split]

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def bootstrap_draws(sizes: Mapping[str, int], resamples: int = MODEL_BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> list[dict[str, np.ndarray]]:
    """``resamples`` draws of item indices with replacement, one per split (seeded, in ``sizes``' order). Two
    evaluations of the same splits get the same draws, so replicate b of two models (two methods, two seeds)
    resamples the same items: what a paired, hierarchical bootstrap over seeds and items needs."""
    rng = np.random.default_rng(seed)
    return [{split: rng.integers(0, n, size=n) for split, n in sizes.items()} for _ in range(resamples)]


def bootstrap_model_replicates(computes: Mapping[str, Callable[[Mapping, Mapping | None], float]],
                               per_item: Mapping[str, Mapping[str, np.ndarray]],
                               oracle: Mapping[str, Mapping[str, np.ndarray]] | None,
                               draws: list[dict[str, np.ndarray]],
                               batched: Mapping[str, Callable[..., np.ndarray]] | None = None,
                               ) -> dict[str, np.ndarray]:
    """Each model metric recomputed on every draw of ``bootstrap_draws`` (the model's and the oracle's per-item
    values resampled together: they describe the same items in the same order). ``oracle`` may be ``per_item``
    itself (a model that is its own reference). A resample where a metric is undefined gives NaN. A metric in
    ``batched`` (``ModelMetric.compute_draws``) computes all draws in one call instead; a ValueError there
    (undefined on every draw: the sizes are the same in all) gives NaN on every draw."""
    batched = {name: fn for name, fn in (batched or {}).items() if name in computes}
    out: dict[str, np.ndarray] = {}
    for name, compute_draws in batched.items():
        try:
            out[name] = np.asarray(compute_draws(per_item, oracle, draws), dtype=np.float64)
        except (ValueError, ZeroDivisionError):
            out[name] = np.full(len(draws), np.nan)
    stats: dict[str, list[float]] = {name: [] for name in computes if name not in batched}
    for draw in draws:
        model_view = _Resampled(per_item, draw)
        oracle_view = model_view if oracle is per_item else (None if oracle is None else _Resampled(oracle, draw))
        for name in stats:
            try:
                stats[name].append(float(computes[name](model_view, oracle_view)))
            except (ValueError, ZeroDivisionError):
                stats[name].append(float("nan"))
    out.update({name: np.array(values, dtype=np.float64) for name, values in stats.items()})
    return {name: out[name] for name in computes}


def draw_matrix(values: np.ndarray, draws: list[dict[str, np.ndarray]], split: str) -> np.ndarray:
    """``values`` (one per item of ``split``) resampled by every draw: row b is ``values[draws[b][split]]``."""
    return values[np.stack([draw[split] for draw in draws])]


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """(1 - level)/2 and (1 + level)/2 quantiles of the finite replicates; None when fewer than half are finite."""
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < len(replicates) / 2 or not len(finite):
        return None, None
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def bootstrap_model_intervals(computes: Mapping[str, Callable[[Mapping, Mapping | None], float]],
                              per_item: Mapping[str, Mapping[str, np.ndarray]],
                              oracle: Mapping[str, Mapping[str, np.ndarray]] | None, level: float = 0.95,
                              resamples: int = MODEL_BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                              ) -> dict[str, tuple[float, float] | tuple[None, None]]:
    """Percentile bootstrap intervals of model metrics over items: ``bootstrap_model_replicates`` on
    ``bootstrap_draws`` (every split redrawn per resample, shared by every metric), then ``percentile_interval``.
    An interval is None when fewer than half of its resamples are finite or a split has fewer than 2 items."""
    sizes = {split: len(next(iter(values.values()))) for split, values in per_item.items() if values}
    if not sizes or min(sizes.values()) < 2:
        return {name: (None, None) for name in computes}
    replicates = bootstrap_model_replicates(computes, per_item, oracle, bootstrap_draws(sizes, resamples, seed))
    return {name: percentile_interval(values, level) for name, values in replicates.items()}


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
    # the engine products it reads ("answer", "paraphrase", "perturbed", "rephrased", "generation"): what a naive
    # evaluation that gives every metric its own pass would have to compute for it (``ubench perf --only eval``)
    reads: tuple[str, ...] = ("answer",)
    number_format: str = ".3f"  # how a board prints it
    version: str = "1"  # bump when a change can change the metric's numbers (it enters run and reference ids)

    def evaluated_on(self, roles: Collection[str]) -> bool:
        """Whether a task whose splits have ``roles`` evaluates the metric: one of its roles is among them."""
        return any(role in roles for role in self.roles)

    def applies(self, scores: SplitScores) -> bool:
        """Whether the metric is defined on this split's scores: its role, its required field and every engine
        product it reads were computed."""
        return (scores.role in self.roles and (self.requires is None or getattr(scores, self.requires) is not None)
                and all(getattr(scores, PRODUCT_FIELDS[p]) is not None for p in self.reads))

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
    # Optional: the metric on every bootstrap draw at once (per_item, oracle, draws) -> array of len(draws), equal
    # to ``compute`` on each draw's resample (the AUCs: one rank computation over all draws instead of one each).
    compute_draws: Callable[..., np.ndarray] | None = None
    number_format: str = ".3f"  # how a board prints it
    version: str = "1"  # bump when a change can change the metric's numbers (it enters run and reference ids)
    # the split roles whose per-item values it reads, as alternatives: a task evaluates it when its splits cover
    # every role of one alternative (() = every task)
    role_sets: tuple[tuple[str, ...], ...] = ()
    # False: a metric added after records were published and computed only from per-item values those records'
    # metrics already hold. It stays out of run and reference ids (``bench.metrics.identity``) while its version is
    # "1", so adding it re-keys no record (records made before it lack its value: a blank cell); a bump of its
    # version enters the ids like any other metric's, so a change of its numbers still re-keys
    in_ids: bool = True

    def evaluated_on(self, roles: Collection[str]) -> bool:
        """Whether a task whose splits have ``roles`` evaluates the metric (see ``role_sets``)."""
        return not self.role_sets or any(all(r in roles for r in needed) for needed in self.role_sets)


class MissingReferenceError(RuntimeError):
    """A reference-relative metric was asked for without its reference (retain oracle) results."""


class MissingInputError(LookupError):
    """A model metric's per-item inputs were not computed in this evaluation (e.g. GradNorm without
    ``evaluate(..., gradnorm=True)``): the metric is left out of the record, not reported as a number."""
