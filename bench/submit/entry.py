"""A submission entry (one YAML file, ``SubmissionEntry``) and the report of its checks (``SubmissionReport``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.specs.mapping import from_mapping, read_yaml
from bench.specs.run import Budget


@dataclass(frozen=True)
class SubmissionEntry:
    """A method submitted to a board (one YAML file).

    ``method``: registered name; ``version``: must equal the class's ``version``; ``label``: the board row
    (default: the method name); ``paper``: title / arXiv id; ``citation``: optional BibTeX; ``authors``: at least
    one; ``params``: hyper-parameter overrides; ``tier``: the board's budget tier (give exactly one of ``tier``
    and ``budget``); ``budget``: a board's custom budget mapping, read like a tier of ``tiers.yaml`` (``Budget``
    fields), for a board whose budget is not a named tier; ``plugin``:
    a single ``.py`` file registering the method, relative to the entry file; ``package``: optional, the pip package
    whose ``ubench.methods`` entry point registers the method (named in the board's error when it is not
    installed); ``description``: optional; ``submitted``: the date ``ubench submit`` accepted it (written by the
    tool, with a custom budget in full).
    """

    method: str
    version: str
    paper: str
    authors: tuple[str, ...]
    tier: str = ""
    budget: Budget | None = None
    label: str = ""
    citation: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""
    package: str = ""
    description: str = ""
    submitted: str = ""

    def __post_init__(self) -> None:
        for name in ("method", "version", "paper"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name}: must not be empty")
        if bool(self.tier.strip()) == (self.budget is not None):
            raise ValueError("tier: give exactly one of tier (the board's named budget tier) and budget (a board's "
                             "custom budget mapping)")
        if self.budget is not None and self.budget.tier:
            raise ValueError(f"budget.tier: a custom budget has no tier name; write tier: {self.budget.tier} "
                             f"instead of budget")
        if not self.authors or not all(a.strip() for a in self.authors):
            raise ValueError("authors: list at least one author (non-empty names)")
        if not self.label:
            object.__setattr__(self, "label", self.method)

    @staticmethod
    def load(path: str | Path) -> SubmissionEntry:
        """Parse an entry file; a malformed one raises ``SpecError`` naming the file and the field."""
        return from_mapping(SubmissionEntry, read_yaml(path), str(path))

    def to_yaml(self) -> str:
        """The entry as YAML: the fields in a fixed order, empty optional ones left out (``method``, ``label``,
        ``params`` and ``plugin``, which the board reads, are always written), a custom budget with every field
        (the budget the board runs), multi-line text as blocks."""
        data = dataclasses.asdict(self)
        data["authors"] = list(self.authors)
        if self.budget is not None:
            data["budget"] = {k: v for k, v in data["budget"].items() if k != "tier"}
        order = ("method", "version", "label", "paper", "authors", "citation", "description", "params", "tier",
                 "budget", "plugin", "package", "submitted")
        kept = {k: data[k] for k in order
                if data[k] not in ("", None) or k in ("method", "label", "params", "plugin")}
        return yaml.dump(kept, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=110)


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML that writes multi-line strings (a BibTeX citation) as ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


@dataclass
class SubmissionReport:
    """The outcome of ``validate_and_submit``: ``lines`` as printed, ``ok`` iff every check passed, ``written``
    the entry file written into the board's entries folder (None unless ok)."""

    lines: list[str] = field(default_factory=list)
    ok: bool = True
    written: Path | None = None
    echo: Callable[[str], None] | None = None

    def add(self, status: str, check: str, detail: str = "") -> None:
        if status == "FAIL":
            self.ok = False
        self.say(f"{status} {check}: {detail}" if detail else f"{status} {check}")

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def first_line(exc: BaseException | str) -> str:
    """The first line of an error (reports stay one line per check)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else (type(exc).__name__ if isinstance(exc, BaseException) else "")
