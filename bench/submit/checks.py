"""The checks of a submission that run its code: the method is registered and documented, its hyper-parameters lie
in the declared search space, and two smoke runs finish ``ok`` with identical records. They run in the sandboxed
subprocess (``bench.submit.sandbox``), never in the process that submits."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import inspect
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.methods.base import Method, make_method, search_space_of
from bench.registry import METHODS, RegistryError
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.runtime.sections import RecordError
from bench.runtime.store import Store
from bench.specs.mapping import SpecError, canonical_json
from bench.specs.tiers import smallest_tier
from bench.submit.entry import SubmissionEntry, first_line

SMOKE_SPLIT = "forget10"
SMOKE_SEED = 0


def load_method(method: str, plugin: Path | None) -> tuple[type, str]:
    """Load ``plugin`` (if given) and look ``method`` up; returns (class, where it came from).

    Raises RegistryError (unknown name with did-you-mean, or a plug-in that fails) with a one-line message."""
    if plugin is not None:
        if plugin.suffix != ".py":
            raise RegistryError(f"plug-in {plugin}: must be a single .py file")
        METHODS.load_plugin_file(str(plugin))
    cls = METHODS.get(method)
    if not inspect.isclass(cls):
        raise RegistryError(f"{method!r} is registered as {type(cls).__name__}, not a Method class")

    if not issubclass(cls, Method):
        raise RegistryError(f"{method!r} ({cls.__qualname__}) does not derive from bench.methods.base.Method")
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:
        source = None
    source_path = Path(source).resolve() if source else None
    if plugin is not None:
        if source_path != plugin.resolve():
            raise RegistryError(f"method {method!r} is registered by {source or cls.__module__}, not by the plug-in "
                                f"{plugin}")
        return cls, f"plug-in file {plugin}"
    for ep in importlib.metadata.entry_points(group=METHODS.group, name=method):
        dist = f" of installed package {ep.dist.name} {ep.dist.version}" if ep.dist is not None else ""
        return cls, f"entry point {ep.name} = {ep.value}{dist}"
    if cls.__module__.startswith(f"{METHODS.package}."):
        return cls, f"built in ({cls.__module__}.{cls.__qualname__})"
    return cls, f"{cls.__module__}.{cls.__qualname__} ({source or 'unknown file'})"


def check_documentation(cls: type, entry: SubmissionEntry) -> list[str]:
    problems = []
    doc = (cls.__dict__.get("__doc__") or "").strip()
    if not doc:
        problems.append(f"class {cls.__qualname__} has no docstring (state the loss formula there)")
    if not str(getattr(cls, "paper", "") or "").strip():
        problems.append(f"class {cls.__qualname__} has no 'paper' attribute (title / arXiv id)")
    version = str(getattr(cls, "version", ""))
    if entry.version != version:
        problems.append(f"entry version {entry.version!r} != {cls.__qualname__}.version {version!r}")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_params(cls: type, entry: SubmissionEntry, source: str) -> tuple[Any, list[str]]:
    """(the method instance or None, problems): the params must build the method, lie within the declared search
    space, and leave every field outside the search space at its default."""
    try:
        instance = make_method(entry.method, entry.params, source)
    except SpecError as exc:
        return None, [first_line(exc)]
    space = search_space_of(cls.Params)
    defaults = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(cls.Params)}
    problems = []
    for name in entry.params:
        value = getattr(instance.params, name)
        if name in space:
            allowed = list(space[name])
            numbers = [v for v in allowed if _is_number(v)]
            if _is_number(value) and numbers:
                low, high = min(numbers), max(numbers)
                if not low <= value <= high:
                    problems.append(f"params.{name}: {value!r} is outside the search space [{low!r}, {high!r}]")
            elif value not in allowed:
                problems.append(f"params.{name}: {value!r} is not in the search space {allowed!r}")
        else:
            default = defaults[name]
            if default is not dataclasses.MISSING and value != default:
                listed = ", ".join(space) or "none"
                problems.append(f"params.{name}: {value!r} differs from the default {default!r}; fields outside the "
                                f"search space are fixed by the method's version (tunable: {listed})")
    return instance, problems


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """The path of the first place where two JSON-like values differ (for the determinism check's reason)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}.{key}".lstrip(".")
            if canonical_json(a[key]) != canonical_json(b[key]):
                return _first_difference(a[key], b[key], f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if canonical_json(x) != canonical_json(y):
                return _first_difference(x, y, f"{path}[{i}]")
    return path.lstrip(".") or "(record)"


def smoke_run(method: str, params: dict[str, Any], task: str, folder: Path | None = None) -> tuple[bool, str]:
    """Run ``method`` twice under the smallest tier (split forget10, seed 0), each into a fresh store
    (``folder/run1`` and ``folder/run2``, or temporary folders); (ok, detail) where ok needs status ok, finite
    losses and identical records (their evidence: ``bench.runtime.records.evidence``). ``validate_and_submit`` calls
    this in the sandboxed subprocess (``run_sandboxed``), never in its own process."""
    budget = smallest_tier()
    spec = make_run_spec(task, SMOKE_SPLIT, method, params, budget, SMOKE_SEED)
    where = f"{task}/{SMOKE_SPLIT}, tier {budget.tier} ({budget.steps} steps), seed {SMOKE_SEED}"
    records = []
    start = time.perf_counter()
    for attempt in (1, 2):
        with contextlib.ExitStack() as stack:
            if folder is None:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ubench-smoke-")))
            else:
                root = Path(folder) / f"run{attempt}"
                shutil.rmtree(root, ignore_errors=True)  # a fresh store, also in a reused work folder
            try:
                record = execute(spec, Store(root), reuse=False)
            except Exception as exc:  # a plug-in may raise anything; report it instead of crashing the tool
                return False, f"run {attempt} on {where} raised {type(exc).__name__}: {first_line(exc)}"
        if not record.ok:
            error = record.error or RecordError("?")
            step = f" (step {error.step})" if error.step is not None else ""
            return False, (f"run {attempt} on {where} failed{step}: {error.type}: {first_line(error.message)}")
        losses = record.train.losses if record.train else []
        bad = [i + 1 for i, v in enumerate(losses) if not math.isfinite(v)]
        if bad:
            return False, f"run {attempt} on {where}: non-finite training loss at step {bad[0]}"
        records.append(record.evidence())
    seconds = time.perf_counter() - start
    first, second = (json.loads(canonical_json(r)) for r in records)
    if first != second:
        return False, (f"two identical runs on {where} gave different records (first difference: "
                       f"{_first_difference(first, second)}); the method must be deterministic given the seed")
    losses = records[0]["train"]["losses"]
    return True, f"2 runs on {where}: status ok, {len(losses)} finite losses, identical records ({seconds:.1f} s)"
