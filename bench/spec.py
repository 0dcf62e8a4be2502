"""Frozen specifications: what a task, a budget, a run and a leaderboard are.

Every spec is built from plain YAML/JSON mappings by ``from_mapping``, which rejects unknown fields and wrong types
with a ``SpecError`` naming the file and the field (with a did-you-mean hint), so a typo never silently drops a
setting. A ``RunSpec`` hashes to its content-addressed run id.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    """Invalid user input: the message is one line naming the file and the field (line breaks in it, e.g. from a
    key or a value quoted from the input, become spaces)."""

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).splitlines()))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def content_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj``, truncated to ``length`` hex digits."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML mapping; a syntax error or a non-mapping document becomes one ``SpecError`` line."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: file not found") from exc
    except OSError as exc:  # a folder, no permission
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: invalid YAML: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or ["syntax error"])[0]
        raise SpecError(f"{path}:{where}: invalid YAML: {_one_line(problem)}") from exc
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar the safe loader cannot build, e.g. 2024-13-01
        raise SpecError(f"{path}: invalid YAML: {_one_line(exc)}") from exc
    except RecursionError as exc:
        raise SpecError(f"{path}: invalid YAML: nested too deeply") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _loc(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _check_type(value: Any, annotation: Any, source: str, path: str) -> Any:
    """Validate (and lightly coerce: int -> float, list -> tuple) ``value`` against a type annotation."""
    where = _loc(source, path)
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is type(None):
        if value is not None:
            raise SpecError(f"{where}: expected null, got {type(value).__name__} {value!r}")
        return None
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        if isinstance(value, dict):  # a mapping can only mean the structured option: report its own errors
            structured = [o for o in options if dataclasses.is_dataclass(o)]
            if structured:
                return _check_type(value, structured[0], source, path)
        errors = []
        for option in options:
            if option is type(None):  # a non-null value never matches it (the errors of the others say more)
                continue
            try:
                return _check_type(value, option, source, path)
            except SpecError as exc:
                errors.append(str(exc))
        raise SpecError(errors[-1] if errors else f"{where}: invalid value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return tuple(_check_type(v, item_type, source, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        key_type, value_type = typing.get_args(annotation) or (Any, Any)
        out = {}
        for key, item in value.items():
            if key_type is str and not isinstance(key, str):
                raise SpecError(f"{where}: keys must be text, got {type(key).__name__} {key!r}")
            out[key] = _check_type(item, value_type, source, f"{path}.{key}")
        return out
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_mapping(annotation, value, source, path)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise SpecError(f"{where}: number out of range: {value!r}") from None
        if not math.isfinite(number):
            raise SpecError(f"{where}: expected a finite number, got {value!r}")
        return number
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise SpecError(f"{where}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
        return value
    return value


def from_mapping(cls: type, data: Any, source: str, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown or missing fields and wrong types raise ``SpecError``.

    Messages read ``<source>: <field.path>: <problem>``, e.g. ``leaderboards/x.yaml: budget.stpes: unknown field``.
    A dataclass's ``__post_init__`` may raise ``ValueError("field: problem")``; it is re-raised with the location.
    """
    where = _loc(source, path)
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(fields)})"
            shown = key if isinstance(key, str) and key.isprintable() and key.strip() else repr(key)
            raise SpecError(f"{source}: {prefix}{shown}: unknown field{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _check_type(data[name], hints[name], source, f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{source}: {prefix}{name}: missing required field")
    try:
        return cls(**kwargs)
    except SpecError as exc:
        message = str(exc)
        if source and not message.startswith(source):  # a __post_init__ raising SpecError("field: problem")
            raise SpecError(f"{source}: {prefix}{message}") from exc
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise SpecError(f"{source}: {prefix}{_one_line(exc)}") from exc


@dataclass(frozen=True)
class Budget:
    """The optimisation budget every method gets on a board: optimizer steps of AdamW with linear warm-up.

    Effective batch = ``batch_size * grad_accum`` forget items (and as many retain items) per optimizer step.
    """

    steps: int = 20
    lr: float = 1e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 0.0  # 0 disables clipping
    callback_every: int = 0  # 0: no callbacks
    tier: str = ""  # the named tier this budget is (bench/control/tiers.yaml); "" for a custom budget
    schedule: str = "constant"  # learning rate after warm-up: constant | linear (decay to 0) | cosine (to 0)
    forward_passes_per_step: int = 4  # most forward passes of the trained model per micro-batch

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        for name in ("warmup_steps", "callback_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"schedule: must be constant, linear or cosine, got {self.schedule!r}")
        if self.forward_passes_per_step < 1:
            raise ValueError(f"forward_passes_per_step: must be >= 1, got {self.forward_passes_per_step}")

    @property
    def forward_pass_limit(self) -> int:
        """Forward passes of the trained model the whole run may use (all steps, prepare and finalize included)."""
        return self.steps * self.grad_accum * self.forward_passes_per_step


CONTROL_KINDS = ("none", "mixing", "early_stop")
UTILITY_MEASURES = ("retain_es", "retain_rouge", "model_utility")


@dataclass(frozen=True)
class ControlSpec:
    """How a run is controlled before comparison (arXiv 2406.09179).

    ``mixing``: after training, calibrate theta(alpha) = (1 - alpha) theta_target + alpha theta_unlearned to the
    largest alpha with U >= tau * U(target) (bisection to ``tolerance``). ``early_stop``: at every callback step
    (``budget.callback_every``) measure U and stop when it falls below tau * U(target), keeping the last model that
    passed. ``none``: raw endpoints only. With any kind, a positive ``budget.callback_every`` records U and forget
    ES at those step-budget checkpoints.
    """

    kind: str = "mixing"
    tau: float = 0.9
    utility: str = "retain_es"
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in CONTROL_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(CONTROL_KINDS)}, got {self.kind!r}")
        if self.utility not in UTILITY_MEASURES:
            raise ValueError(f"utility: must be one of {', '.join(UTILITY_MEASURES)}, got {self.utility!r}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau: must be in (0, 1], got {self.tau}")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance: must be in (0, 1), got {self.tolerance}")


@dataclass(frozen=True)
class RunSpec:
    """One unlearning run: a pure function of these fields gives the run record.

    ``task`` is ``name@version``; ``hparams`` are the method's hyper-parameters with defaults filled in, so the
    run id changes whenever any number that can change a result changes.
    """

    task: str
    split: str
    method: str
    hparams: dict[str, Any]
    model: dict[str, Any]
    budget: Budget
    seed: int = 0
    control: ControlSpec = field(default_factory=ControlSpec)
    requests: int = 1  # sequential forget requests the forget split is applied as (1 = all at once)
    adapter: AdapterSpec | None = None  # None: full fine-tuning

    def to_dict(self) -> dict[str, Any]:
        """The canonical fields; ``adapter`` only when set, so full fine-tuning runs keep their ids."""
        out = json.loads(canonical_json(self))
        if out.get("adapter") is None:
            out.pop("adapter", None)
        return out

    @property
    def run_id(self) -> str:
        return content_hash(self.to_dict())

    @property
    def label(self) -> str:
        sequential = f"x{self.requests}" if self.requests > 1 else ""
        return f"{self.task}/{self.split}{sequential}/{self.method}/seed{self.seed}"


@dataclass(frozen=True)
class AdapterSpec:
    """Train a LoRA adapter (Hu et al. 2022, via ``peft``) instead of the full weights: W + (alpha / r) B A on the
    ``target_modules`` of every layer, with B initialised to 0 (the run starts at the target). The adapter is
    merged into the weights after training, so evaluation, calibration by mixing and the stored model are those of
    a plain model; the G-effect is measured on the adapter's parameters (the ones trained)."""

    kind: str = "lora"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self) -> None:
        if self.kind != "lora":
            raise ValueError(f"kind: only 'lora' adapters are supported, got {self.kind!r}")
        if self.r < 1 or self.alpha < 1:
            raise ValueError(f"r and alpha: must be >= 1, got r={self.r}, alpha={self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("target_modules: name at least one module")


@dataclass(frozen=True)
class MethodEntry:
    """A method on a board: registered name, optional display label, hyper-parameter overrides, and (for an
    out-of-tree method submitted from a single file) the plug-in file that registers it."""

    method: str
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""

    @property
    def display(self) -> str:
        return self.label or self.method


def load_submitted_entries(folder: Path) -> list[tuple[Path, MethodEntry]]:
    """The method entries ``ubench submit`` wrote into ``folder`` (``*.yaml``, sorted by name)."""
    if not folder.is_dir():
        return []
    out = []
    for file in sorted(folder.glob("*.yaml")):
        data = read_yaml(file)
        board_fields = {"method": data.get("method"), "label": data.get("label", ""),
                        "params": data.get("params", {}) or {}, "plugin": data.get("plugin", "") or ""}
        entry = from_mapping(MethodEntry, board_fields, str(file))
        if entry.plugin and not Path(entry.plugin).is_absolute():
            entry = dataclasses.replace(entry, plugin=str((file.parent / entry.plugin).resolve()))
        out.append((file, entry))
    return out


@dataclass(frozen=True)
class TaskEntry:
    """A (task, forget split) of a board. ``requests`` > 1 applies the forget split as that many sequential forget
    requests (MUSE's sustainability: the subjects in consecutive groups, each unlearned on the previous result)."""

    task: str
    split: str
    requests: int = 1
    model: str | None = None  # a model preset (models/<name>.yaml) instead of the task's tiny models

    @property
    def label(self) -> str:
        """``task/split``, or ``task/split/preset`` for a model preset: a row group of the board."""
        return f"{self.task}/{self.split}" + (f"/{self.model}" if self.model else "")

    def __post_init__(self) -> None:
        if not isinstance(self.requests, int) or self.requests < 1:
            raise SpecError(f"requests: must be an integer >= 1, got {self.requests!r}")


@dataclass(frozen=True)
class SortSpec:
    by: str
    descending: bool = True


@dataclass(frozen=True)
class LeaderboardSpec:
    """A named, versioned board: tasks x methods x seeds under one budget, and how to show the results."""

    name: str
    version: str
    tasks: tuple[TaskEntry, ...]
    methods: tuple[MethodEntry, ...]
    columns: tuple[str, ...]
    sort: SortSpec
    budget: Budget | str = "standard"  # a tier name (bench/control/tiers.yaml) or an explicit budget mapping
    control: ControlSpec = field(default_factory=ControlSpec)
    seeds: tuple[int, ...] = ()  # default: the tier's number of seeds, 0..n-1
    description: str = ""
    path: str = ""
    entries: str = "entries"  # folder (next to the generated tables) of method entries added by `ubench submit`
    # further markdown tables after the main one, title -> columns (same rows, same order; all columns in the CSV)
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    adapter: AdapterSpec | None = None  # every run of the board trains a LoRA adapter (None: full fine-tuning)
    output: str = ""  # folder of the generated tables and releases (default: <name>/ next to the spec)

    def __post_init__(self) -> None:
        # both name folders: leaderboards/<name>/<entries>/
        if not self.name.strip() or self.name in (".", "..") or any(c in self.name for c in "/\\\0"):
            raise ValueError(f"name: must be a folder name (no '/', not '.' or '..'), got {self.name!r}")
        if not self.entries.strip() or "\0" in self.entries:
            raise ValueError(f"entries: must be a folder name, got {self.entries!r}")

    @property
    def all_columns(self) -> tuple[str, ...]:
        """The main table's columns, then those of ``tables`` not already shown, in order."""
        return tuple(dict.fromkeys((*self.columns, *(c for cols in self.tables.values() for c in cols))))

    @staticmethod
    def load(path: str | Path) -> LeaderboardSpec:
        data = read_yaml(path)
        data.setdefault("path", str(path))
        spec = from_mapping(LeaderboardSpec, data, str(path))
        if not spec.methods:
            raise SpecError(f"{path}: methods: the board lists no method")
        if not spec.tasks:
            raise SpecError(f"{path}: tasks: the board lists no task")
        from bench.control.tiers import tier, tier_seeds

        if isinstance(spec.budget, str):
            spec = dataclasses.replace(spec, budget=tier(spec.budget, str(path)))
        if not spec.seeds:
            spec = dataclasses.replace(spec, seeds=tuple(range(tier_seeds(spec.budget.tier))))
        submitted = load_submitted_entries(spec.entries_dir)
        if submitted:
            taken = {m.display for m in spec.methods}
            for entry_file, entry in submitted:
                if entry.display in taken:
                    raise SpecError(f"{entry_file}: label: {entry.display!r} is already on board {spec.name}")
                taken.add(entry.display)
            spec = dataclasses.replace(spec, methods=(*spec.methods, *(e for _, e in submitted)))
        return spec

    @property
    def entries_dir(self) -> Path:
        """Submitted method entries: ``<name>/<entries>/`` next to the spec, wherever the tables go."""
        return Path(self.path).parent / self.name / self.entries

    @property
    def out_dir(self) -> Path:
        """Generated tables and releases: ``output`` when set (relative to the spec's folder), else next to the
        spec, ``leaderboards/<name>/``."""
        if self.output:
            return Path(self.path).parent / self.output
        return Path(self.path).parent / self.name
