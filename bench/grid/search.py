"""Hyper-parameter search under a budget tier, scored only on calibrated endpoints (arXiv 2406.09179).

A search draws ``n_trials`` configurations of one method from its declared search space (trial 0 is the board
entry's own parameters), runs each as an ordinary stored run under the same budget and ``mixing`` control, and
selects the trial with the best forget efficacy at matched utility: the lowest forget extraction strength of the
model mixed back to ``U >= tau * U(target)``, ties broken by the larger trade-off AUC, then by trial order. Raw
(uncalibrated) endpoints are never compared, so a trial cannot win by destroying utility.

The search summary is stored atomically as ``<store.root>/searches/<search_id>.json``, where ``search_id`` hashes
every input of the search. Trials are runs with their own run ids, so rerunning a search reuses their records.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.methods.base import full_hparams, make_method, search_space_of
from bench.registry import METHODS
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.runtime.store import Store, atomic_write_text, dumps
from bench.specs.mapping import SpecError, canonical_json, content_hash
from bench.specs.run import Budget, ControlSpec

SELECTABLE_STATUS = "ok"
MAX_ENUMERATED = 100_000  # larger search spaces are sampled without counting their valid combinations first


def _method_seed(method_name: str, seed: int) -> int:
    """The sampler's seed: ``seed`` plus the integer value of the content hash of the method name."""
    return seed + int(content_hash(method_name), 16)


def _valid(method_name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The full hyper-parameters (defaults filled) of ``params``, or None when ``make_method`` rejects them."""
    try:
        return full_hparams(make_method(method_name, params))
    except SpecError:
        return None


def _valid_keys(method_name: str, fixed: dict[str, Any], space: dict[str, list]) -> set[str] | None:
    """Canonical JSON of every distinct valid full configuration in the product of ``space`` (over ``fixed``),
    or None when the product is too large to enumerate."""
    if math.prod(len(values) for values in space.values()) > MAX_ENUMERATED:
        return None
    names = sorted(space)
    keys = set()
    for combo in itertools.product(*(space[n] for n in names)):
        full = _valid(method_name, {**fixed, **dict(zip(names, combo))})
        if full is not None:
            keys.add(canonical_json(full))
    return keys


def sample_trials(method_name: str, base_params: dict[str, Any] | None, n_trials: int, seed: int) -> list[dict]:
    """Hyper-parameter configurations (every field filled in) for a search over ``method_name``.

    Trial 0 is ``base_params`` with defaults filled (it must be valid: a ``SpecError`` otherwise). Trials 1..n-1
    are drawn with ``random.Random(seed + content_hash(method_name))``: every field of the declared search space
    (``search_space_of(cls.Params)``) is drawn from its listed values, in field-name order; a configuration equal
    to an earlier trial or rejected by ``make_method`` is skipped. Fields outside the search space keep their
    ``base_params`` value (default otherwise). The result has ``min(n_trials, number of distinct valid
    configurations, trial 0 included)`` entries.
    """
    if n_trials < 1:
        raise SpecError(f"search: n_trials: must be >= 1, got {n_trials}")
    base = dict(base_params or {})
    first = full_hparams(make_method(method_name, base))
    trials = [first]
    cls = METHODS.get(method_name)
    space = {name: list(values) for name, values in search_space_of(cls.Params).items() if values}
    if n_trials == 1 or not space:
        return trials
    fixed = {k: v for k, v in base.items() if k not in space}
    seen = {canonical_json(first)}
    keys = _valid_keys(method_name, fixed, space)
    if keys is not None:
        wanted = min(n_trials, len(keys | seen))
        max_draws = 1000 * math.prod(len(v) for v in space.values())
    else:
        wanted, max_draws = n_trials, 1000 * n_trials
    rng = random.Random(_method_seed(method_name, seed))
    names = sorted(space)
    draws = 0
    while len(trials) < wanted and draws < max_draws:
        draws += 1
        drawn = {name: rng.choice(space[name]) for name in names}
        full = _valid(method_name, {**fixed, **drawn})
        if full is None:
            continue
        key = canonical_json(full)
        if key in seen:
            continue
        seen.add(key)
        trials.append(full)
    return trials


@dataclass(frozen=True)
class Trial:
    """One trial of a search: its parameters, its run and the calibrated numbers it is scored on.

    ``forget_es`` is the forget extraction strength after calibration by mixing (``control.calibrated_metrics``),
    ``alpha`` the calibrated mixing weight and ``auc`` the area of the trade-off curve; all None when the run
    did not finish ``ok`` with a calibration.
    """

    index: int
    params: dict[str, Any]
    run_id: str
    status: str
    forget_es: float | None
    alpha: float | None
    auc: float | None
    error: str | None = None

    @property
    def selectable(self) -> bool:
        """Finished ``ok`` with a finite calibrated forget ES (failed or over-budget trials never are)."""
        return self.status == SELECTABLE_STATUS and self.forget_es is not None and math.isfinite(self.forget_es)


@dataclass(frozen=True)
class SearchResult:
    """Every trial of a search and the selected one (None when no trial is selectable)."""

    search_id: str
    task: str
    split: str
    method: str
    base_params: dict[str, Any]
    budget: Budget
    seed: int
    control: ControlSpec
    n_trials: int
    trials: tuple[Trial, ...]
    selected: int | None
    path: Path | None = field(default=None, compare=False)

    @property
    def best(self) -> Trial | None:
        return self.trials[self.selected] if self.selected is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The stored summary: inputs, every trial and the selection."""
        return {"search_id": self.search_id, "task": self.task, "split": self.split, "method": self.method,
                "base_params": self.base_params, "budget": dataclasses.asdict(self.budget), "seed": self.seed,
                "control": dataclasses.asdict(self.control), "n_trials": self.n_trials,
                "criterion": "min control.calibrated_metrics[forget/es]; ties: max control.tradeoff.auc, "
                             "then trial order",
                "trials": [dataclasses.asdict(t) for t in self.trials], "selected": self.selected,
                "selected_params": self.best.params if self.best else None,
                "selected_run_id": self.best.run_id if self.best else None}


def search_id_of(task: str, split: str, method: str, base_params: dict[str, Any] | None, budget: Budget, seed: int,
                 control: ControlSpec, n_trials: int) -> str:
    """Content hash of every input of a search."""
    return content_hash({"task": task, "split": split, "method": method, "base_params": dict(base_params or {}),
                         "budget": budget, "seed": seed, "control": control, "n_trials": n_trials})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def trial_of(index: int, params: dict[str, Any], record: dict) -> Trial:
    """Read a trial's status and calibrated scores from its run record."""
    control = record.get("control") or {}
    calibrated = (control.get("calibrated_metrics") or {}).get("forget/es") or {}
    error = record.get("error") or None
    return Trial(index=index, params=params, run_id=record["run_id"], status=record.get("status", "failed"),
                 forget_es=_number(calibrated.get("value")),
                 alpha=_number((control.get("calibration") or {}).get("alpha")),
                 auc=_number((control.get("tradeoff") or {}).get("auc")),
                 error=error.get("message") if isinstance(error, dict) else None)


def select(trials: list[Trial] | tuple[Trial, ...]) -> int | None:
    """Index of the selectable trial with the lowest calibrated forget ES, then the highest AUC, then the first."""
    def key(t: Trial) -> tuple[float, float, int]:
        auc = t.auc if t.auc is not None and math.isfinite(t.auc) else -math.inf
        return (t.forget_es, -auc, t.index)

    candidates = [t for t in trials if t.selectable]
    return min(candidates, key=key).index if candidates else None


def search(task: str, split: str, method: str, base_params: dict[str, Any] | None, budget: Budget, seed: int,
           store: Store, control: ControlSpec | None = None, n_trials: int = 1) -> SearchResult:
    """Run (or reuse) ``n_trials`` calibrated runs of ``method`` and select the best at matched utility.

    Every trial is ``execute(make_run_spec(...), store, reuse=True)`` with the same task, split, budget, seed and
    control, which must be ``mixing`` (``SpecError`` otherwise: only calibrated endpoints are compared). The
    summary is written to ``<store.root>/searches/<search_id>.json``.
    """
    control = control or ControlSpec()
    if control.kind != "mixing":
        raise SpecError(f"search: control.kind: a search compares calibrated endpoints and needs 'mixing', "
                        f"got {control.kind!r}")
    params_list = sample_trials(method, base_params, n_trials, seed)
    specs = [make_run_spec(task, split, method, params, budget, seed, control=control) for params in params_list]
    trials = tuple(trial_of(i, params, execute(spec, store, reuse=True))
                   for i, (params, spec) in enumerate(zip(params_list, specs)))
    search_id = search_id_of(specs[0].task, split, method, base_params, budget, seed, control, n_trials)
    result = SearchResult(search_id=search_id, task=specs[0].task, split=split, method=method,
                          base_params=dict(base_params or {}), budget=budget, seed=seed, control=control,
                          n_trials=n_trials, trials=trials, selected=select(trials))
    path = store.root / "searches" / f"{search_id}.json"
    atomic_write_text(path, dumps(result.to_dict()))
    return dataclasses.replace(result, path=path)
