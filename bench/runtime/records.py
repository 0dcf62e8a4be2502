"""Typed records: a run (``RunRecord``), a reference evaluation (``ReferenceRecord``) and a calibrated search's summary
(``SearchRecord``), each with one id field, read from and written to JSON through ``from_dict`` / ``to_dict``.

**Schema.** Every stored record carries ``schema_version``. ``MIGRATIONS[v]`` turns the JSON form of schema ``v``
into that of ``v + 1``; ``migrate`` applies them in order on read, so a record written by any earlier version keeps
loading, and ``to_dict`` always writes ``SCHEMA_VERSION``. Steps:

- 1 -> 2: one id field. A run stored its id as ``run_id``, a reference evaluation as ``record_id`` and a search summary
  as ``search_id`` (and had no ``schema_version``): each is now ``id``.

**Evidence** (``evidence``): what a rerun of the same spec must reproduce, and what a release hashes and every
comparison compares: the record's JSON form without the top-level ``VOLATILE`` fields (``timings``: how long;
``env``: where, with which versions) and without any ``*_seconds`` or ``*_gib`` field at any depth (a reference
model's ``build.build_seconds``, a peak memory). Three readings of it existed (release: the full definition;
submit's determinism check and ``ubench perf --only grid``: the top-level fields only); the release's is kept
because it is the only one that also ignores the nested durations, which differ between two identical runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from bench.specs.run import Budget, ControlSpec

SCHEMA_VERSION = 2
VOLATILE = ("timings", "env")  # record fields that say how long and where, not what
VOLATILE_SUFFIXES = ("_seconds", "_gib")  # nested fields of the same kind (build time, peak memory)
OK = "ok"


class RecordFormatError(ValueError):
    """A stored record whose JSON does not have a record's shape (one line: what is wrong)."""


def evidence(data: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of a record without ``VOLATILE`` top-level fields and without any ``*_seconds`` / ``*_gib`` field
    at any depth: what a rerun with the same seeds must reproduce (see the module docstring)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith(VOLATILE_SUFFIXES)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip({k: v for k, v in data.items() if k not in VOLATILE})


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


def _known(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entries of ``data`` that are fields of ``cls`` and the others (kept in ``extra``, written back as read)."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return ({k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names})


def _require(data: Mapping[str, Any], key: str, types: tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, types):
        names = " or ".join("null" if t is type(None) else {"str": "string", "dict": "object", "list": "array",
                                                             "int": "integer"}.get(t.__name__, t.__name__)
                            for t in types)
        raise RecordFormatError(f"{what}field {key!r} must be {names}, got {type(value).__name__}")
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class MetricEntry:
    """One stored metric: its value, standard error, item count, split, 95% interval and, for the engine's metrics,
    ``boot``: its value on each of the evaluation's shared item draws (``bench.board.seedstats``)."""

    value: float | None
    stderr: float | None = None
    n: int | None = None
    split: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    boot: tuple[float | None, ...] | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> MetricEntry:
        if not isinstance(data, Mapping):
            raise RecordFormatError(f"{where}: expected an object, got {type(data).__name__}")
        known, _ = _known(cls, data)
        boot = known.pop("boot", None)
        if boot is not None and not isinstance(boot, list):
            raise RecordFormatError(f"{where}.boot: expected an array, got {type(boot).__name__}")
        return cls(**{"value": None, **known}, boot=None if boot is None else tuple(boot))

    def to_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "stderr": self.stderr, "n": self.n, "split": self.split,
               "ci_low": self.ci_low, "ci_high": self.ci_high}
        return out if self.boot is None else {**out, "boot": list(self.boot)}

    @property
    def number(self) -> float | None:
        """The value as a float, or None where it is missing or not a number."""
        return _number(self.value)


def metrics_from_dict(data: Any, where: str = "metrics") -> dict[str, MetricEntry]:
    """The metrics section (key -> entry) of a record's JSON form."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise RecordFormatError(f"{where}: expected an object, got {type(data).__name__}")
    return {key: MetricEntry.from_dict(entry, f"{where}.{key}") for key, entry in data.items()}


def metrics_to_dict(metrics: Mapping[str, MetricEntry]) -> dict[str, dict[str, Any]]:
    return {key: entry.to_dict() for key, entry in metrics.items()}


@dataclass(frozen=True)
class RecordError:
    """Why a run did not finish ``ok``: the exception type and message, the step of a non-finite loss, a traceback."""

    type: str
    message: str = ""
    step: int | None = None
    traceback: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> RecordError | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise RecordFormatError(f"error: expected an object, got {type(data).__name__}")
        known, _ = _known(cls, data)
        return cls(**{"type": "error", **known})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.step is not None:
            out["step"] = self.step
        if self.traceback is not None:
            out["traceback"] = self.traceback
        return out

    @property
    def text(self) -> str:
        """``type: message`` and the step where there is one."""
        return f"{self.type}: {self.message}" + (f" (step {self.step})" if self.step is not None else "")


class _Section:
    """A record section with known fields and ``extra``: the keys this version does not know, written back as read.
    ``from_dict`` checks that the known sections are JSON objects; ``OMIT_NONE`` fields are left out when None."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_dict(cls, data: Any, where: str = ""):
        if not isinstance(data, Mapping):
            raise RecordFormatError(f"{where.rstrip('.')}: expected an object, got {type(data).__name__}")
        known, extra = _known(cls, data)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        return {**{k: v for k, v in out.items() if not (v is None and k in self.OMIT_NONE)}, **self.extra}


@dataclass(frozen=True)
class Calibration(_Section):
    """The control section's calibration by mixing (arXiv 2406.09179): alpha*, the threshold and the utilities."""

    alpha: float | None = None
    tau: float | None = None
    u_target: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tradeoff(_Section):
    """The forget efficacy vs utility points of the probed alphas and the area under their frontier."""

    points: list[dict[str, Any]] = field(default_factory=list)
    auc: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Control(_Section):
    """A run's control section: its spec, the target's utility and forget ES, the checkpoints and, under ``mixing``
    control, the calibration, the calibrated model's metrics and the trade-off."""

    spec: dict[str, Any] = field(default_factory=dict)
    u_target: float | None = None
    es_target: float | None = None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    calibration: Calibration | None = None
    calibrated_metrics: dict[str, MetricEntry] | None = None
    tradeoff: Tradeoff | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"calibration", "calibrated_metrics", "tradeoff"})

    @classmethod
    def from_dict(cls, data: Any, where: str = "control.") -> Control:
        section = super().from_dict(data, where)
        calibration, tradeoff = section.calibration, section.tradeoff
        return replace(section,
                       calibration=None if calibration is None else Calibration.from_dict(calibration,
                                                                                          f"{where}calibration"),
                       calibrated_metrics=None if section.calibrated_metrics is None else metrics_from_dict(
                           section.calibrated_metrics, f"{where}calibrated_metrics"),
                       tradeoff=None if tradeoff is None else Tradeoff.from_dict(tradeoff, f"{where}tradeoff"))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in ("calibration", "tradeoff"):
            if out.get(name) is not None:
                out[name] = out[name].to_dict()
        if self.calibrated_metrics is not None:
            out["calibrated_metrics"] = metrics_to_dict(self.calibrated_metrics)
        return out

    @property
    def utility_target(self) -> float | None:
        """The target's utility: the calibration's, else the section's own."""
        if self.calibration is not None and self.calibration.u_target is not None:
            return self.calibration.u_target
        return self.u_target


@dataclass(frozen=True)
class GEffectSummary(_Section):
    """A run's G-effect summary (arXiv 2502.19301): the cumulative G-effect per data set, the most-affected block group
    and its share, and (NPO family) the mean weight at the first and last recorded step."""

    cumulative: dict[str, float] = field(default_factory=dict)
    cumulative_groups: dict[str, Any] = field(default_factory=dict)
    top_group: str | None = None
    top_group_share: float | None = None
    npo_weight: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"npo_weight"})


@dataclass(frozen=True)
class BudgetUse(_Section):
    """The budget section: the declared budget, what the run used, and which limits it exceeded."""

    declared: dict[str, Any] = field(default_factory=dict)
    used: dict[str, Any] = field(default_factory=dict)
    exceeded: list[str] = field(default_factory=list)
    per_request: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Training(_Section):
    """The train section: steps taken, the loss per step and the last step's diagnostics."""

    steps: int = 0
    losses: list[float] = field(default_factory=list)
    final_diagnostics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSelection:
    """Which trial of which calibrated search a search-tier cell's record is (not stored in the run record)."""

    search_id: str
    selected: int | None
    n_trials: int

    @property
    def text(self) -> str:
        return f"selected trial {self.selected} of {self.n_trials} (search {self.search_id})"


def _typed(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Check the top-level field types of a record's JSON form (``RecordFormatError`` naming the first bad one)."""
    expected = {"id": (str,), "status": (str,), "error": (dict, type(None)), "metrics": (dict,), "spec": (dict,),
                "timings": (dict,), "env": (dict,), "control": (dict, type(None)), "train": (dict, type(None)),
                "geffect": (dict, type(None)), "budget": (dict, type(None)), "build": (dict, type(None))}
    for key, types in expected.items():
        if key in data:
            _require(data, key, types, what)
    return dict(data)


@dataclass(frozen=True)
class RunRecord:
    """One run of a ``RunSpec`` (``bench.run.execute``): its status (``ok``, ``failed``, ``budget_exceeded``) and
    error, the final model's metrics, the control section (calibrated metrics, trade-off), the G-effect summary,
    training and budget use, and the volatile ``timings`` and ``env``. ``id`` is the spec's run id. ``search`` says
    which trial of a calibrated search the record is, where a board cell is one (in memory, not stored)."""

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
    search: SearchSelection | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record of a JSON form of the current schema (``migrate`` first)."""
        data = _typed(data, "")
        known, extra = _known(cls, {k: v for k, v in data.items() if k not in ("schema_version", "kind")})
        control, geffect, train, budget = (known.pop(k, None) for k in ("control", "geffect", "train", "budget"))
        metrics, error = metrics_from_dict(known.pop("metrics", None)), RecordError.from_dict(known.pop("error", None))
        return cls(**known, metrics=metrics, error=error,
                   control=None if control is None else Control.from_dict(control),
                   geffect=None if geffect is None else GEffectSummary.from_dict(geffect, "geffect"),
                   train=None if train is None else Training.from_dict(train, "train"),
                   budget=None if budget is None else BudgetUse.from_dict(budget, "budget"), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``result.json`` (schema ``SCHEMA_VERSION``; ``search`` is not stored)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "id": self.id, "kind": self.KIND, "spec": self.spec,
                               "status": self.status, "label": self.label, "metrics": metrics_to_dict(self.metrics),
                               "error": None if self.error is None else self.error.to_dict(),
                               "train": None if self.train is None else self.train.to_dict(),
                               "timings": self.timings, "env": self.env, **self.extra}
        for name in ("control", "geffect", "budget"):
            section = getattr(self, name)
            if section is not None:
                out[name] = section.to_dict()
        return out

    def evidence(self) -> dict[str, Any]:
        """``evidence`` of the record's JSON form."""
        return evidence(self.to_dict())

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
        known, extra = _known(cls, {k: v for k, v in data.items() if k not in ("schema_version", "kind")})
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
                   alpha=_number(control.calibration.alpha) if control and control.calibration else None,
                   auc=_number(control.tradeoff.auc) if control and control.tradeoff else None,
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
        trials = _require(data, "trials", (list,), "")
        try:
            return cls(id=data["id"], task=data["task"], split=data["split"], method=data["method"],
                       base_params=dict(data.get("base_params") or {}), budget=Budget(**data["budget"]),
                       seed=data["seed"], control=ControlSpec(**data["control"]), n_trials=data["n_trials"],
                       trials=tuple(Trial(**t) for t in trials), selected=data.get("selected"))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordFormatError(f"not a search summary ({type(exc).__name__}: {exc})") from exc
