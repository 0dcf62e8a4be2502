"""The sections of a typed record (``bench.runtime.records``): a stored metric, an error, the control section
(calibration, calibrated metrics, trade-off), the G-effect summary, budget use and training. Each reads its JSON
form with ``from_dict`` (``RecordFormatError``, one line, for a wrong shape) and writes it back with ``to_dict``; keys
a section does not know are kept in ``extra`` and written back as read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar


class RecordFormatError(ValueError):
    """A stored record whose JSON does not have a record's shape (one line: what is wrong)."""


def known_fields(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entries of ``data`` that are fields of ``cls`` and the others (kept in ``extra``, written back as read)."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return ({k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names})


def require(data: Mapping[str, Any], key: str, types: tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, types):
        names = " or ".join("null" if t is type(None) else {"str": "string", "dict": "object", "list": "array",
                                                             "int": "integer"}.get(t.__name__, t.__name__)
                            for t in types)
        raise RecordFormatError(f"{what}field {key!r} must be {names}, got {type(value).__name__}")
    return value


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def stored_boot(values) -> tuple[float | None, ...] | None:
    """A metric's values on the shared item draws as a record keeps them: 6 significant digits, None for NaN."""
    return None if values is None else tuple(None if not math.isfinite(x) else float(f"{x:.6g}") for x in values)


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
        known, _ = known_fields(cls, data)
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
        return number(self.value)


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
        known, _ = known_fields(cls, data)
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
        known, extra = known_fields(cls, data)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        return {**{k: v for k, v in out.items() if not (v is None and k in self.OMIT_NONE)}, **self.extra}


@dataclass(frozen=True)
class Calibration(_Section):
    """The control section's calibration by mixing (arXiv 2406.09179): alpha*, the threshold tau, the utility measure
    and its values (target, unlearned, at alpha*), the forget ES at alpha* and the probing cost."""

    alpha: float | None = None
    tau: float | None = None
    u_target: float | None = None
    utility: str | None = None
    u_unlearned: float | None = None
    u_alpha: float | None = None
    forget_es_alpha: float | None = None
    probe_calls: int | None = None
    scoring_passes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"utility", "u_unlearned", "u_alpha", "forget_es_alpha",
                                                     "probe_calls", "scoring_passes"})


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
    """A run's G-effect summary (arXiv 2502.19301, ``bench.geffect.callback.GEffectRecorder.summary``): the cumulative
    G-effect per data set and per block group, the most-affected group of the forget set and its share, (NPO
    family) the mean weight at the first and last recorded step, and (records written since the step changes are
    recorded) the realised first-order and the measured change of each risk with their agreement. Empty (every
    field None) without measurements."""

    cumulative: dict[str, float] | None = None
    cumulative_groups: dict[str, dict[str, float]] | None = None
    top_group: str | None = None
    top_group_share: float | None = None
    npo_weight: dict[str, float] | None = None
    sign_pattern: dict[str, float] | None = None  # share of measurements with e_u < 0 and with e_r >= 0
    steps: list[int] | None = None  # the recorded steps
    finite: bool | None = None  # every measurement finite
    # the changes of R(D) the optimizer's updates made (positive: the risk rose), absent from older records
    realised_change: dict[str, float] | None = None  # sum of grad R(D)^T (theta_{t+1} - theta_t) * span
    measured_change: dict[str, float] | None = None  # R(D) at the end of training minus at the first recorded step
    one_step_change: dict[str, float] | None = None  # sum of (R(D)(theta_{t+1}) - R(D)(theta_t)) * span
    agreement: dict[str, dict[str, float]] | None = None  # D -> realised/paper relative errors and correlations
    realised_groups: dict[str, dict[str, float]] | None = None  # D -> block group -> realised change
    extra: dict[str, Any] = field(default_factory=dict)  # per-block sums, the first and last measurement
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"cumulative", "cumulative_groups", "top_group",
                                                     "top_group_share", "npo_weight", "sign_pattern", "steps",
                                                     "finite", "realised_change", "measured_change", "agreement",
                                                     "realised_groups", "one_step_change"})

    @property
    def measured(self) -> bool:
        """Whether the summary has any content (a run whose recorder measured at least once)."""
        return bool(self.to_dict())


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




@dataclass(frozen=True)
class MethodOrigin(_Section):
    """Where a run's method came from and whom to credit (``bench.run.origin.method_origin``): the method class's
    ``version``; the installed distribution that provides it (``package``, ``package_version``) or else the name of
    the plug-in file that registers it (``plugin``, a file name, never a path); and, for a board's submitted entry
    (``ubench submit``), the entry file's name, its ``paper``, ``authors`` and BibTeX ``citation``. Metadata only:
    neither in the run id nor in the record's evidence, so it changes no number and no release hash."""

    version: str = ""
    package: str | None = None
    package_version: str | None = None
    plugin: str | None = None
    entry: str | None = None
    paper: str | None = None
    authors: list[str] | None = None
    citation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"package", "package_version", "plugin", "entry", "paper",
                                                     "authors", "citation"})
