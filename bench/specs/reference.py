"""The board-file reference (``docs/board-file.md``, written by ``ubench docs``), generated from the spec classes.

Every field of a board file (``LeaderboardSpec`` and the sections it nests: ``TaskEntry``, ``MethodEntry``,
``SortSpec``, ``Budget``, ``ControlSpec``, ``AdapterSpec``) and of an entry file gets a row: its name, its type in
YAML words, its default and its meaning. The meaning is the field's comment in the class source (the comment lines
right above it and the comment after it on its line), else its ``` ``name``: meaning``` part of the class
docstring. The pytest options come from the plug-in's ``pytest_addoption`` calls, recorded by ``bench.docs``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Sequence
from typing import Any

from bench.specs.board import LeaderboardSpec

SCALAR_WORDS = {bool: "bool", int: "integer", float: "number", str: "text"}


@dataclasses.dataclass(frozen=True)
class PytestOption:
    """An option of the pytest plug-in as its ``addoption`` call declares it."""

    flags: tuple[str, ...]
    default: Any
    help: str
    action: str = ""


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in the source of dataclass ``cls``: the comment lines right above it, then the comment
    after it on its last line, joined into one line."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in typing.cast(ast.ClassDef, ast.parse(source).body[0]).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above, line = [], node.lineno - 1
        while line >= 1 and lines[line - 1].lstrip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        after = [comments[node.end_lineno]] if node.end_lineno in comments else []
        out[node.target.id] = " ".join([*above, *after])
    return out


def docstring_meanings(cls: type) -> dict[str, str]:
    """The ``` ``name``: meaning``` parts of ``cls``'s docstring (separated by ``;``), by field name."""
    text = " ".join((cls.__doc__ or "").split())
    found = re.finditer(r"``(\w+)``: (.+?)(?=; ``\w+``: |\.$|$)", text)
    return {m.group(1): m.group(2) for m in found}


def type_words(annotation: Any) -> str:
    """A declared type in the words of a YAML file: ``list of text``, ``Budget or text``, ``integer or null``."""
    if annotation is Any:
        return "any"
    if annotation is type(None):
        return "null"
    if dataclasses.is_dataclass(annotation):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_words(a) for a in args)
    if origin in (tuple, list):
        return f"list of {type_words(args[0]) if args else 'any'}"
    if origin is dict:
        return f"mapping of {type_words(args[0])} to {type_words(args[1])}" if args else "mapping"
    return SCALAR_WORDS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_words(spec_field: dataclasses.Field) -> str:
    """A field's default as YAML (``required`` without one; a section's own defaults for a nested section)."""
    if spec_field.default is not dataclasses.MISSING:
        value = spec_field.default
    elif spec_field.default_factory is not dataclasses.MISSING:
        value = spec_field.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "its fields' defaults"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def field_table(cls: type) -> list[str]:
    """Markdown table of the mapping form of dataclass ``cls``: one row per ``init`` field, in declaration order."""
    hints = typing.get_type_hints(cls)
    comments, documented = field_comments(cls), docstring_meanings(cls)
    rows = ["| field | type | default | meaning |", "|-------|------|---------|---------|"]
    for f in dataclasses.fields(cls):
        if f.init:
            meaning = comments.get(f.name) or documented.get(f.name) or ""
            rows.append(f"| `{f.name}` | {_cell(type_words(hints[f.name]))} | {_cell(default_words(f))} | "
                        f"{_cell(meaning)} |")
    return rows


def nested_sections(cls: type) -> list[tuple[type, str]]:
    """The dataclasses the mapping form of ``cls`` nests, depth first, each once, with the field path that first
    names it (``tasks[]``, ``budget``)."""
    seen: dict[type, str] = {}

    def walk(annotation: Any, where: str) -> None:
        if dataclasses.is_dataclass(annotation) and annotation not in seen:
            seen[annotation] = where
            for name, hint in typing.get_type_hints(annotation).items():
                walk(hint, f"{where}.{name}" if where else name)
        origin = typing.get_origin(annotation)
        for arg in typing.get_args(annotation):
            walk(arg, f"{where}[]" if origin in (tuple, list) else where)

    walk(cls, "")
    return [(nested, where) for nested, where in seen.items() if nested is not cls]


def _section(cls: type, heading: str, intro: str) -> list[str]:
    """A heading, an introduction and the field table of ``cls``."""
    return [heading, "", intro, "", *field_table(cls), ""]


def _nested(cls: type, where: str) -> list[str]:
    """The section of a nested dataclass: named after the class (the anchor the type column links), the field
    that holds it, and its docstring's first paragraph."""
    summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    holder = f"Each item of `{where[:-2]}`" if where.endswith("[]") else f"The `{where}` mapping"
    return _section(cls, f"### {cls.__name__}", f"{holder}. {summary}")


def options_table(options: Sequence[PytestOption]) -> list[str]:
    """Markdown table of the pytest plug-in's options."""
    rows = ["| option | default | meaning |", "|--------|---------|---------|"]
    for option in options:
        default = {"store_true": "`false`", "append": "none (repeat the option for more)"}.get(option.action)
        default = default or ("none" if option.default is None else f"`{json.dumps(option.default)}`")
        rows.append(f"| `{', '.join(option.flags)}` | {default} | {_cell(option.help)} |")
    return rows


PATHS = """## Paths

A relative path in a board file is read from the folder of the file that names it, never from the working
directory: the board's `plugins`, a method's `plugin`, a task or model preset given as a YAML file (`task:
../tasks/mine.yaml`), `output` and the entries folder `<name>/<entries>/`; an entry file's `plugin` is read from
the entry file's folder.
Absolute paths are used as they are. Tables and releases show a task or preset file by its file name only."""

NUMBERS = """## YAML numbers

Every YAML file the suite reads from users (boards, entry files, tier files, task files, model presets) is parsed
with YAML 1.2's number syntax: `1e-3`, `1E5`, `.5` and `2.5e-4` are numbers without quotes (PyYAML alone, on YAML
1.1, reads `1e-3` as text). A quoted number is text: `lr: "1e-3"` is an error (`expected a number, got str`).
An integer is accepted where a number is declared, never text or `true` for a number. An error is one line,
`FILE: FIELD: problem`, about the first problem in file order; a field left out that has no default comes after
the fields given."""


def board_file_reference(entry_cls: type, options: Sequence[PytestOption]) -> str:
    """Markdown: the board file's fields and its nested sections, the entry file's (``entry_cls``), the pytest
    plug-in's ``options``, and how paths and numbers are read."""
    lines = ["# Board file reference", "",
             "Generated by `ubench docs` from the spec classes (`bench/specs/board.py`, `bench/specs/run.py`, "
             "`bench/submit/entry.py`) and the pytest plug-in's options (`bench/pytest_plugin.py`); do not edit by "
             "hand.", "",
             "A board file (`leaderboards/<name>.yaml`) is a YAML mapping of the fields below; `ubench run`, "
             "`ubench board` and `pytest` read it. An unknown field is an error with the closest field's name.", "",
             *_section(LeaderboardSpec, "## The board file (LeaderboardSpec)", "The top level of a board file."),
             *(line for cls, where in nested_sections(LeaderboardSpec) for line in _nested(cls, where)),
             *_section(entry_cls, f"## The entry file ({entry_cls.__name__})",
                       "`ubench submit ENTRY.yaml` checks an entry file and writes it into the board's entries folder "
                       "(`leaderboards/<name>/entries/<label>.yaml`), from which the board adds the method (its "
                       "`method`, `label`, `params` and `plugin`)."),
             "## pytest options", "",
             "`pytest BOARD.yaml` runs a board with the plug-in `bench.pytest_plugin` (one item per task, method "
             "and seed); `-k` selects entries as `ubench run -k` does.", "",
             *options_table(options), "", PATHS, "", NUMBERS]
    return "\n".join(lines) + "\n"
