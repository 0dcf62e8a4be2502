"""Where a run's method came from and whom to credit (the record's ``origin``, ``MethodOrigin``): the method class's
``version``, the installed distribution that provides it (name and version, from ``importlib.metadata``) or else the
name of the plug-in file that registers it, and, for an entry that ``ubench submit`` added to a board, the entry's
paper, authors and BibTeX. Built-in methods on a board's own list get no origin, so their records keep their bytes.

Only names travel, never a local path: a record, a release and an HTML board are shared."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.registry import METHODS
from bench.runtime.records import RunRecord
from bench.runtime.sections import MethodOrigin
from bench.specs.board import LeaderboardSpec, MethodEntry, load_submitted_entries
from bench.specs.mapping import read_yaml


def _distribution(cls: type) -> importlib.metadata.Distribution | None:
    """The installed distribution that provides ``cls``: the one whose ``ubench.methods`` entry point names the
    class, else the one that installs the class's top-level module; None for a module no distribution installs."""
    for ep in importlib.metadata.entry_points(group=METHODS.group):
        if ep.dist is not None and ep.value.replace(":", ".") == f"{cls.__module__}.{cls.__qualname__}":
            return ep.dist
    top = cls.__module__.partition(".")[0]
    for name in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _source_file(cls: type) -> str | None:
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:  # a class without a file (built in C, or defined in an interactive session)
        return None
    return Path(source).name if source else None


def is_built_in(cls: type) -> bool:
    return cls.__module__.startswith(f"{METHODS.package}.")


def method_origin(method: str, submitted: MethodOrigin | None = None) -> MethodOrigin | None:
    """The origin of registered ``method``: its class's ``version`` and, unless it is built in, its distribution's
    name and version or its plug-in file's name; ``submitted`` (``entry_origin``) adds the entry's facts. None for
    a built-in method without an entry, and for a name that is not registered (nothing to say)."""
    try:
        cls = METHODS.get(method)
    except LookupError:
        return submitted
    if is_built_in(cls) and submitted is None:
        return None
    origin = submitted or MethodOrigin()
    origin = dataclasses.replace(origin, version=str(getattr(cls, "version", "")))
    if is_built_in(cls):
        return origin
    dist = _distribution(cls)
    if dist is not None:
        return dataclasses.replace(origin, package=dist.metadata["Name"], package_version=dist.version)
    return dataclasses.replace(origin, plugin=_source_file(cls))


def _text(value: Any) -> str | None:
    """An entry file's text field, or None where it is absent or blank."""
    if value is None:
        return None
    return str(value).strip() or None


def entry_origin(board: LeaderboardSpec, entry: MethodEntry) -> MethodOrigin | None:
    """The facts of ``entry``'s submitted entry file in the board's entries folder (written by ``ubench submit``):
    its file name, paper, authors and citation; None for an entry of the board file itself."""
    for file, submitted in load_submitted_entries(board.entries_dir):
        if submitted.display == entry.display and submitted.method == entry.method:
            data = read_yaml(file)
            authors = data.get("authors") or []
            return MethodOrigin(entry=file.name, paper=_text(data.get("paper")),
                                authors=[str(a) for a in authors] if isinstance(authors, list) else None,
                                citation=_text(data.get("citation")))
    return None


def board_origins(board: LeaderboardSpec, cells: Iterable[tuple[MethodEntry, RunRecord | None]]
                  ) -> dict[str, MethodOrigin]:
    """Method label -> origin of each board entry that has one: its first stored record's ``origin`` (what ran),
    else, for a submitted entry not run yet, ``method_origin`` of its entry file's facts."""
    out: dict[str, MethodOrigin] = {}
    for entry, record in cells:
        if record is not None and record.origin is not None:
            out.setdefault(entry.display, record.origin)
    for entry in board.methods:
        if entry.display not in out and (submitted := entry_origin(board, entry)) is not None:
            out[entry.display] = method_origin(entry.method, submitted) or submitted
    return out
