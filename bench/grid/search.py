"""Hyper-parameter search under a budget tier, scored only on calibrated endpoints (arXiv 2406.09179).

A search draws ``n_trials`` configurations of one method from its declared search space (trial 0 is the board
entry's own parameters), runs each as an ordinary stored run under the same budget and ``mixing`` control, and
selects the trial with the best forget efficacy at matched utility: the lowest forget extraction strength of the
model mixed back to ``U >= tau * U(target)``, ties broken by the larger trade-off AUC, then by trial order. Raw
(uncalibrated) endpoints are never compared, so a trial cannot win by destroying utility.

The search summary (``bench.runtime.records.SearchRecord``) is stored atomically by the store, under an id that
hashes every input of the search. Trials are runs with their own run ids, so rerunning a search reuses their records.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from bench.methods.base import full_hparams, make_method, search_space_of
from bench.registry import METHODS
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.runtime.records import SearchRecord, Trial
from bench.runtime.sections import MethodOrigin
from bench.runtime.store import Store
from bench.specs.mapping import SpecError, canonical_json, content_hash
from bench.specs.run import Budget, ControlSpec

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


def search_id_of(task: str, split: str, method: str, base_params: dict[str, Any] | None, budget: Budget, seed: int,
                 control: ControlSpec, n_trials: int) -> str:
    """Content hash of every input of a search."""
    return content_hash({"task": task, "split": split, "method": method, "base_params": dict(base_params or {}),
                         "budget": budget, "seed": seed, "control": control, "n_trials": n_trials})


def select(trials: list[Trial] | tuple[Trial, ...]) -> int | None:
    """Index of the selectable trial with the lowest calibrated forget ES, then the highest AUC, then the first."""
    def key(t: Trial) -> tuple[float, float, int]:
        auc = t.auc if t.auc is not None and math.isfinite(t.auc) else -math.inf
        return (t.forget_es, -auc, t.index)

    candidates = [t for t in trials if t.selectable]
    return min(candidates, key=key).index if candidates else None


def search(task: str, split: str, method: str, base_params: dict[str, Any] | None, budget: Budget, seed: int,
           store: Store, control: ControlSpec | None = None, n_trials: int = 1,
           submitted: MethodOrigin | None = None) -> SearchRecord:
    """Run (or reuse) ``n_trials`` calibrated runs of ``method`` and select the best at matched utility.

    Every trial is ``execute(make_run_spec(...), store, reuse=True)`` with the same task, split, budget, seed and
    control, which must be ``mixing`` (``SpecError`` otherwise: only calibrated endpoints are compared). The
    summary is stored (``Store.write_search``). ``submitted``: the board entry's facts for each trial's record
    (``bench.run.execute.execute``).
    """
    control = control or ControlSpec()
    if control.kind != "mixing":
        raise SpecError(f"search: control.kind: a search compares calibrated endpoints and needs 'mixing', "
                        f"got {control.kind!r}")
    params_list = sample_trials(method, base_params, n_trials, seed)
    specs = [make_run_spec(task, split, method, params, budget, seed, control=control) for params in params_list]
    trials = tuple(Trial.of_run(i, params, execute(spec, store, reuse=True, submitted=submitted))
                   for i, (params, spec) in enumerate(zip(params_list, specs)))
    search_id = search_id_of(specs[0].task, split, method, base_params, budget, seed, control, n_trials)
    record = SearchRecord(id=search_id, task=specs[0].task, split=split, method=method,
                          base_params=dict(base_params or {}), budget=budget, seed=seed, control=control,
                          n_trials=n_trials, trials=trials, selected=select(trials))
    store.write_search(record)
    return record
