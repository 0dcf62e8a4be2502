"""What a board is: its tasks, method entries (submitted ones included), columns, sort order, budget and control."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.specs.mapping import SpecError, from_mapping, read_yaml
from bench.specs.run import AdapterSpec, Budget, ControlSpec
from bench.specs.tiers import tier, tier_seeds


def label_slug(label: str) -> str:
    """File-name form of a label: lower case, runs of other characters become one dash (``GA+KL`` -> ``ga-kl``)."""
    return re.sub(r"[^a-z0-9._]+", "-", label.lower()).strip("-.") or "entry"


@dataclass(frozen=True)
class MethodEntry:
    """A method on a board: registered name, optional display label, hyper-parameter overrides, and (for an
    out-of-tree method submitted from a single file) the plug-in file that registers it."""

    method: str  # a registered method name (`ubench ls methods`)
    label: str = ""  # the board row's name (default: the method name); labels are unique on a board
    params: dict[str, Any] = field(default_factory=dict)  # hyper-parameter overrides (the method's defaults fill in)
    plugin: str = ""  # a Python file that registers the method (relative: from the file that names it)

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
        entry = dataclasses.replace(entry, plugin=_resolved(entry.plugin, file.parent))
        out.append((file, entry))
    return out


@dataclass(frozen=True)
class TaskEntry:
    """A (task, forget split) of a board. ``requests`` > 1 applies the forget split as that many sequential forget
    requests (MUSE's sustainability: the subjects in consecutive groups, each unlearned on the previous result)."""

    task: str  # a task name (tasks/**/*.yaml), or a task YAML file (relative: from the board file's folder)
    split: str  # a forget split of the task
    requests: int = 1  # > 1: the forget split as that many sequential forget requests (MUSE's sustainability)
    # a model preset, by name (models/<name>.yaml) or YAML file, instead of the task's tiny models
    model: str | None = None

    @property
    def label(self) -> str:
        """``task/split``, or ``task/split/preset`` for a model preset (a YAML file by its file name): a row group
        of the board."""
        return f"{shown_name(self.task)}/{self.split}" + (f"/{shown_name(self.model)}" if self.model else "")

    def __post_init__(self) -> None:
        if not isinstance(self.requests, int) or self.requests < 1:
            raise SpecError(f"requests: must be an integer >= 1, got {self.requests!r}")


@dataclass(frozen=True)
class SortSpec:
    """How a board orders its method rows within each task (reference rows stay on top)."""

    by: str = ""  # the column to sort by (default: the first of the board's `columns`)
    # true: highest first; default: best first, by the column's direction of better (a column best at an ideal
    # value sorts by distance to it, closest first, whatever this says; one without a direction needs it given)
    descending: bool | None = None


@dataclass(frozen=True)
class LeaderboardSpec:
    """A named, versioned board: tasks x methods x seeds under one budget, and how to show the results."""

    name: str  # names the board's folders: tables in <name>/ and entries in <name>/<entries>/ next to the file
    version: str  # the board's version, quoted ("3"): releases are <version>+<content hash>
    tasks: tuple[TaskEntry, ...]  # the (task, forget split) row groups, at least one
    methods: tuple[MethodEntry, ...]  # the method entries, at least one (entry files add more)
    columns: tuple[str, ...]  # the main table's columns: metric keys (docs/metrics.md), e.g. forget/es
    sort: SortSpec = field(default_factory=SortSpec)  # default: by the first column, best first
    budget: Budget | str = "standard"  # a tier name (bench/specs/tiers.yaml) or an explicit budget mapping
    control: ControlSpec = field(default_factory=ControlSpec)  # how runs are made comparable before the table
    seeds: tuple[int, ...] = ()  # default: the tier's number of seeds, 0..n-1
    description: str = ""  # what the board compares, shown under its title
    path: str = ""  # the board file itself: filled in when it is read (leave it out)
    entries: str = "entries"  # folder (next to the generated tables) of method entries added by `ubench submit`
    # further markdown tables after the main one, title -> columns (same rows, same order; all columns in the CSV)
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    adapter: AdapterSpec | None = None  # every run of the board trains a LoRA adapter (None: full fine-tuning)
    output: str = ""  # folder of the generated tables and releases (default: <name>/ next to the spec)
    # Python files registering what the board's columns or methods need beyond the package (metrics, evaluations,
    # methods: see README "Extending"); relative paths are read from the board file's folder, as entries' `plugin`
    plugins: tuple[str, ...] = ()
    # attacks run on every evaluated model of the board (bench.attacks): names, or `cheap` / `all` for the
    # registered attacks of that cost; their numbers are columns `<split>/<metric>@<attack>`
    attacks: tuple[str, ...] = ()
    # save every run's final and calibrated model as `save_pretrained` folders next to its record
    # (runs/<id>/models/{final,calibrated}), for `ubench geffect --checkpoint`, attacks and audits; `ubench run
    # --keep-models` sets it for one run. Not part of any id: the numbers are the same with or without it.
    keep_models: bool = False

    def __post_init__(self) -> None:
        # both name folders: leaderboards/<name>/<entries>/
        if not self.name.strip() or self.name in (".", "..") or any(c in self.name for c in "/\\\0"):
            raise ValueError(f"name: must be a folder name (no '/', not '.' or '..'), got {self.name!r}")
        if not self.entries.strip() or "\0" in self.entries:
            raise ValueError(f"entries: must be a folder name, got {self.entries!r}")
        if not self.sort.by and self.columns:  # the documented default sort column
            object.__setattr__(self, "sort", dataclasses.replace(self.sort, by=self.columns[0]))

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
        if isinstance(spec.budget, str):
            spec = dataclasses.replace(spec, budget=tier(spec.budget, str(path)))
        if not spec.seeds:
            spec = dataclasses.replace(spec, seeds=tuple(range(tier_seeds(spec.budget.tier))))
        spec = _with_file_paths(spec, Path(path).parent)
        submitted = load_submitted_entries(spec.entries_dir)
        if submitted:
            taken = {m.display for m in spec.methods}
            for entry_file, entry in submitted:
                if entry.display in taken:
                    raise SpecError(f"{entry_file}: label: {entry.display!r} is already on board {spec.name}")
                taken.add(entry.display)
            spec = dataclasses.replace(spec, methods=(*spec.methods, *(e for _, e in submitted)))
        return spec

    def method_sources(self) -> list[tuple[str, str]]:
        """Where each method entry is written, in ``methods`` order: (the board file, ``methods[<i>]``) for the
        board's own, (its entry file, ``""``) for one that ``ubench submit`` added: what an error about it names."""
        submitted = load_submitted_entries(self.entries_dir)
        return [next(((str(file), "") for file, entry in submitted if entry == method), (self.path, f"methods[{i}]"))
                for i, method in enumerate(self.methods)]

    @property
    def plugin_files(self) -> tuple[str, ...]:
        """Every plug-in file the board loads: its ``plugins``, then its method entries' ``plugin`` files."""
        return tuple(dict.fromkeys((*self.plugins, *(m.plugin for m in self.methods if m.plugin))))

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


def is_file_ref(name: str | None) -> bool:
    """Whether a board's task or model names a YAML file rather than a registered name."""
    return name is not None and name.endswith((".yaml", ".yml"))


def shown_name(name: str | None) -> str | None:
    """A task or model as tables and releases show it: its name, or its YAML file's name (no local folder)."""
    return Path(name).name if name is not None and is_file_ref(name) else name


def _resolved(path: str, folder: Path) -> str:
    """``path`` read from a file in ``folder``: absolute, relative paths taken from ``folder``."""
    return path if not path or Path(path).is_absolute() else str((folder / path).resolve())


def _file_ref(name: str | None, folder: Path) -> str | None:
    """A task or model as read from a board file in ``folder``: a YAML file resolved from there, a name unchanged."""
    return _resolved(name, folder) if is_file_ref(name) else name


def _with_file_paths(spec: LeaderboardSpec, folder: Path) -> LeaderboardSpec:
    """``spec`` with every path it names read from the board file's folder: ``plugins``, its method entries'
    ``plugin`` and its tasks' task and model YAML files."""
    methods = tuple(dataclasses.replace(m, plugin=_resolved(m.plugin, folder)) for m in spec.methods)
    tasks = tuple(dataclasses.replace(t, task=_file_ref(t.task, folder), model=_file_ref(t.model, folder))
                  for t in spec.tasks)
    return dataclasses.replace(spec, methods=methods, tasks=tasks,
                               plugins=tuple(_resolved(p, folder) for p in spec.plugins))
