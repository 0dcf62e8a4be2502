"""Typed records: a run (``RunRecord``), a reference evaluation (``ReferenceRecord``) and a calibrated search's summary
(``SearchRecord``), each with one id field, read from and written to JSON through ``from_dict`` / ``to_dict``.

**Schema.** Every stored record carries ``schema_version``. ``MIGRATIONS[v]`` turns the JSON form of schema ``v``
into that of ``v + 1``; ``migrate`` applies them in order on read, so a record written by any earlier version keeps
loading, and ``to_dict`` always writes ``SCHEMA_VERSION``. Steps:

- 1 -> 2: one id field. A run stored its id as ``run_id``, a reference evaluation as ``record_id`` and a search summary
  as ``search_id`` (and had no ``schema_version``): each is now ``id``.

**Re-keying** (``rekeyed``): a record stored under the id of a spec that lacked fields which cannot change a number
(the code versions that made it, ``bench.run.migrate``) is the same evidence under the full spec's id: ``rekeyed``
gives that record, ``Store.write_rekeyed`` stores it beside the old one with the old one's other files.

**Evidence** (``evidence``): what a rerun of the same spec must reproduce, and what a release hashes and every
comparison compares: the record's JSON form without the top-level ``VOLATILE`` fields (``timings``: how long;
``env``: where, with which versions; ``origin``: an outside method's package or plug-in file and whom to cite) and
without any ``*_seconds`` or ``*_gib`` field at any depth (a reference model's ``build.build_seconds``, a peak
memory). Three readings of it existed (release: the full definition;
submit's determinism check and ``ubench perf --only grid``: the top-level fields only); the release's is kept
because it is the only one that also ignores the nested durations, which differ between two identical runs. A
release applies it to each ``result.json`` as stored (in the schema it was written in: a store's release hash does
not move when the code's schema does); submit's determinism check, the grid benchmark and ``ubench reproduce``
compare ``RunRecord.evidence()`` (both sides in the current schema).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

from bench.runtime.sections import (
    BudgetUse,
    Control,
    GEffectSummary,
    MethodOrigin,
    MetricEntry,
    RecordError,
    RecordFormatError,
    SearchSelection,
    Training,
    known_fields,
    metrics_from_dict,
    metrics_to_dict,
    number,
    require,
)
from bench.specs.run import Budget, ControlSpec

SCHEMA_VERSION = 2
VOLATILE = ("timings", "env", "origin")  # record fields that say how long, where and whose, not what
VOLATILE_SUFFIXES = ("_seconds", "_gib")  # nested fields of the same kind (build time, peak memory)
OK = "ok"


def evidence(data: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of a record, in the current schema (``migrate``: a record stored before a schema change is the
    same evidence as its rerun), without ``VOLATILE`` top-level fields and without any ``*_seconds`` / ``*_gib``
    field at any depth: what a rerun with the same seeds must reproduce (see the module docstring)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith(VOLATILE_SUFFIXES)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip({k: v for k, v in migrate(data).items() if k not in VOLATILE})


def _one_id(data: dict[str, Any], old: str) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != old}
    if old in data:
        out["id"] = data[old]
    return out


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: ``run_id`` / ``record_id`` / ``search_id`` -> ``id``."""
    for old in ("run_id", "record_id", "search_id"):
        data = _one_id(data, old)
    return {**data, "schema_version": 2}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def migrate(data: Mapping[str, Any], default_version: int = 1) -> dict[str, Any]:
    """``data`` (a stored record's JSON form) migrated to ``SCHEMA_VERSION``; a record without ``schema_version`` is of
    ``default_version``. ``RecordFormatError`` for a version no migration leads from."""
    out = dict(data)
    version = out.get("schema_version", default_version)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise RecordFormatError(f"unknown record schema {version!r} (expected 1 to {SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        out = MIGRATIONS[version](out)
        version += 1
    return out


def _typed(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Check the top-level field types of a record's JSON form (``RecordFormatError`` naming the first bad one)."""
    expected = {"id": (str,), "status": (str,), "error": (dict, type(None)), "metrics": (dict,), "spec": (dict,),
                "timings": (dict,), "env": (dict,), "control": (dict, type(None)), "train": (dict, type(None)),
                "geffect": (dict, type(None)), "budget": (dict, type(None)), "build": (dict, type(None)),
                "origin": (dict, type(None))}
    for key, types in expected.items():
        if key in data:
            require(data, key, types, what)
    return dict(data)


@dataclass(frozen=True)
class RunRecord:
    """One run of a ``RunSpec`` (``bench.run.execute``): its status (``ok``, ``failed``, ``budget_exceeded``) and
    error, the final model's metrics, the control section (calibrated metrics, trade-off), the G-effect summary,
    training and budget use, and the volatile ``timings``, ``env`` and ``origin`` (an outside method's provenance
    and citation; None for a built-in method, whose records do not carry the key). ``id`` is the spec's run id.
    ``search`` says which trial of a calibrated search the record is, where a board cell is one (in memory, not
    stored)."""

    FOLDER: ClassVar[str] = "runs"
    KIND: ClassVar[str] = "run"

    id: str
    spec: dict[str, Any] = field(default_factory=dict)
    status: str = "failed"
    label: str = ""
    metrics: dict[str, MetricEntry] = field(default_factory=dict)
    error: RecordError | None = None
    control: Control | None = None
    geffect: GEffectSummary | None = None
    train: Training | None = None
    budget: BudgetUse | None = None
    timings: dict[str, float] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # sections this version does not read (adapter, sequential)
    origin: MethodOrigin | None = None
    search: SearchSelection | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record of a JSON form of the current schema (``migrate`` first)."""
        data = _typed(data, "")
        known, extra = known_fields(cls, {k: v for k, v in data.items() if k not in ("schema_version", "kind")})
        if "search" in known:  # never stored: a key of that name is another version's section, kept as read
            extra["search"] = known.pop("search")
        control, geffect, train, budget, origin = (known.pop(k, None)
                                                   for k in ("control", "geffect", "train", "budget", "origin"))
        metrics, error = metrics_from_dict(known.pop("metrics", None)), RecordError.from_dict(known.pop("error", None))
        return cls(**known, metrics=metrics, error=error,
                   control=None if control is None else Control.from_dict(control),
                   geffect=None if geffect is None else GEffectSummary.from_dict(geffect, "geffect"),
                   train=None if train is None else Training.from_dict(train, "train"),
                   budget=None if budget is None else BudgetUse.from_dict(budget, "budget"),
                   origin=None if origin is None else MethodOrigin.from_dict(origin, "origin"), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``result.json`` (schema ``SCHEMA_VERSION``; ``search`` is not stored)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "id": self.id, "kind": self.KIND, "spec": self.spec,
                               "status": self.status, "label": self.label, "metrics": metrics_to_dict(self.metrics),
                               "error": None if self.error is None else self.error.to_dict(),
                               "train": None if self.train is None else self.train.to_dict(),
                               "timings": self.timings, "env": self.env, **self.extra}
        for name in ("control", "geffect", "budget", "origin"):
            section = getattr(self, name)
            if section is not None:
                out[name] = section.to_dict()
        return out

    def evidence(self) -> dict[str, Any]:
        """``evidence`` of the record's JSON form."""
        return evidence(self.to_dict())

    def rekeyed(self, record_id: str, spec: dict[str, Any]) -> RunRecord:
        """The same record (status, metrics, every section) under another ``id`` and ``spec``: the spec completed
        with fields that cannot change its numbers, and the id of that spec (``bench.run.migrate``)."""
        return replace(self, id=record_id, spec=spec, search=None)

    def metric(self, key: str, calibrated: bool = False) -> MetricEntry | None:
        """The stored entry of metric ``key`` (a record key such as ``forget/es``) of the final model, or of the
        calibrated model theta(alpha*) (``control.calibrated_metrics``); None where the record has none."""
        if not calibrated:
            return self.metrics.get(key)
        if self.control is None or self.control.calibrated_metrics is None:
            return None
        return self.control.calibrated_metrics.get(key)


@dataclass(frozen=True)
class ReferenceRecord:
    """The evaluation of a reference model (the target before unlearning, or the retain oracle) of one task split and
    replicate (``bench.run.references``): its metrics, how the model was built, ``timings`` and ``env``. A reference
    has no calibration: its calibrated metrics are its raw ones."""

    FOLDER: ClassVar[str] = "refs"
    KIND: ClassVar[str] = "reference"

    id: str
    spec: dict[str, Any] = field(default_factory=dict)
    status: str = OK
    metrics: dict[str, MetricEntry] = field(default_factory=dict)
    error: RecordError | None = None
    build: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceRecord:
        """The record of a JSON form of the current schema (``migrate`` first)."""
        data = _typed(data, "")
        known, extra = known_fields(cls, {k: v for k, v in data.items() if k not in ("schema_version", "kind")})
        metrics, error = metrics_from_dict(known.pop("metrics", None)), RecordError.from_dict(known.pop("error", None))
        return cls(**known, metrics=metrics, error=error, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``result.json`` (schema ``SCHEMA_VERSION``)."""
        return {"schema_version": SCHEMA_VERSION, "id": self.id, "kind": self.KIND, "status": self.status,
                "error": None if self.error is None else self.error.to_dict(), "spec": self.spec,
                "metrics": metrics_to_dict(self.metrics), "build": self.build, "timings": self.timings,
                "env": self.env, **self.extra}

    def evidence(self) -> dict[str, Any]:
        """``evidence`` of the record's JSON form."""
        return evidence(self.to_dict())

    def rekeyed(self, record_id: str, spec: dict[str, Any]) -> ReferenceRecord:
        """The same evaluation under another ``id`` and ``spec`` (see ``RunRecord.rekeyed``)."""
        return replace(self, id=record_id, spec=spec)

    def metric(self, key: str, calibrated: bool = False) -> MetricEntry | None:
        """The stored entry of metric ``key``; the calibrated model of a reference is the reference itself."""
        return self.metrics.get(key)


Record = RunRecord | ReferenceRecord
RECORD_TYPES: dict[str, type[RunRecord] | type[ReferenceRecord]] = {RunRecord.FOLDER: RunRecord,
                                                                     ReferenceRecord.FOLDER: ReferenceRecord}


def record_from_json(folder: str, data: Any, record_id: str) -> Record:
    """The typed record of a stored ``result.json`` of ``folder`` (``runs`` or ``refs``), migrated to the current
    schema; a record that does not name its id is ``record_id`` (its folder's name). ``RecordFormatError`` (one
    line) for anything that is not such a record."""
    if not isinstance(data, dict):
        raise RecordFormatError(f"expected a JSON object, got {type(data).__name__}")
    if "schema_version" not in data:
        raise RecordFormatError("no schema_version")
    migrated = migrate(data)
    return RECORD_TYPES[folder].from_dict({"id": record_id, **migrated})


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
        return self.status == OK and self.forget_es is not None and math.isfinite(self.forget_es)

    @classmethod
    def of_run(cls, index: int, params: dict[str, Any], record: RunRecord) -> Trial:
        """A trial's status and calibrated scores, read from its run record."""
        calibrated = record.metric("forget/es", calibrated=True)
        control = record.control
        return cls(index=index, params=params, run_id=record.id, status=record.status,
                   forget_es=None if calibrated is None else calibrated.number,
                   alpha=number(control.calibration.alpha) if control and control.calibration else None,
                   auc=number(control.tradeoff.auc) if control and control.tradeoff else None,
                   error=None if record.error is None else record.error.message)


SEARCH_CRITERION = "min control.calibrated_metrics[forget/es]; ties: max control.tradeoff.auc, then trial order"


@dataclass(frozen=True)
class SearchRecord:
    """A calibrated search's summary (``bench.grid.search``): its inputs, every trial and the selected one (None when
    no trial is selectable). ``id`` hashes every input."""

    id: str
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

    @property
    def best(self) -> Trial | None:
        return self.trials[self.selected] if self.selected is not None else None

    @property
    def selection(self) -> SearchSelection:
        return SearchSelection(self.id, self.selected, self.n_trials)

    def with_run_ids(self, renamed: Mapping[str, str]) -> SearchRecord:
        """The summary with each trial's ``run_id`` found in ``renamed`` (old id -> new id) replaced: the trials of a
        store whose run records were re-keyed (``bench.run.migrate``). The search's own id hashes its inputs, not
        its trials', so it is unchanged."""
        trials = tuple(replace(t, run_id=renamed.get(t.run_id, t.run_id)) for t in self.trials)
        return replace(self, trials=trials)

    def to_dict(self) -> dict[str, Any]:
        """The stored summary: inputs, the criterion, every trial and the selection."""
        return {"schema_version": SCHEMA_VERSION, "id": self.id, "task": self.task, "split": self.split,
                "method": self.method, "base_params": self.base_params, "budget": asdict(self.budget),
                "seed": self.seed, "control": asdict(self.control), "n_trials": self.n_trials,
                "criterion": SEARCH_CRITERION, "trials": [asdict(t) for t in self.trials], "selected": self.selected,
                "selected_params": self.best.params if self.best else None,
                "selected_run_id": self.best.run_id if self.best else None}

    @classmethod
    def from_dict(cls, data: Any) -> SearchRecord:
        """The summary of a stored JSON form (of any schema: a summary without ``schema_version`` is of schema 1)."""
        if not isinstance(data, dict):
            raise RecordFormatError(f"expected a JSON object, got {type(data).__name__}")
        data = migrate(data)
        trials = require(data, "trials", (list,), "")
        try:
            return cls(id=data["id"], task=data["task"], split=data["split"], method=data["method"],
                       base_params=dict(data.get("base_params") or {}), budget=Budget(**data["budget"]),
                       seed=data["seed"], control=ControlSpec(**data["control"]), n_trials=data["n_trials"],
                       trials=tuple(Trial(**t) for t in trials), selected=data.get("selected"))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordFormatError(f"not a search summary ({type(exc).__name__}: {exc})") from exc
