"""``ubench ls methods [NAME]``: every registered method (or one) as a block a terminal shows whole: its name,
version and origin (built-in, or the plug-in file or package it came from), the objective (``summary`` and the
class docstring, uncut), the paper, what its default configuration needs, and each hyper-parameter with its default
and declared search space."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import textwrap

from tabulate import tabulate

from bench.docs import method_needs
from bench.methods.base import search_space_of
from bench.registry import METHODS

INDENT = "    "


def shown(value: object) -> str:
    """A hyper-parameter value as a board's YAML would write it (an empty string as ``""``)."""
    return '""' if value == "" else str(value)


def parameter_table(params_cls: type) -> str:
    """One row per field of a Params dataclass: name, type, default, declared search space (``-``: none)."""
    space = search_space_of(params_cls)
    rows = [[f.name, f.type if isinstance(f.type, str) else f.type.__name__, shown(f.default),
             ", ".join(shown(v) for v in space[f.name]) if f.name in space else "-"]
            for f in dataclasses.fields(params_cls)]
    return tabulate(rows, headers=["parameter", "type", "default", "search space"], tablefmt="simple",
                    disable_numparse=True)


def method_text(name: str) -> str:
    """The block ``ubench ls methods`` prints for method ``name``."""
    cls = METHODS.get(name)
    lines = [f"{name}  (version {cls.version}; {METHODS.origin(name)}: {cls.__module__}.{cls.__qualname__})"]
    if cls.summary:
        lines.append(f"{INDENT}{cls.summary}")
    if cls.__doc__:
        lines.append(textwrap.indent(inspect.cleandoc(cls.__doc__), INDENT))
    lines.append(f"{INDENT}paper: {cls.paper or '-'}")
    lines.append(f"{INDENT}needs (default configuration): {', '.join(method_needs(name)) or 'the forget set only'}")
    lines.append(textwrap.indent(parameter_table(cls.Params), INDENT))
    return "\n".join(lines)


def cmd_ls_methods(args: argparse.Namespace) -> int:
    """Every registered method's block (``method_text``), or only ``args.name``'s (an unknown name is a one-line
    error with a did-you-mean)."""
    names = [args.name] if args.name else METHODS.names()
    print("\n\n".join(method_text(name) for name in names))
    return 0
