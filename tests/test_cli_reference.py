"""``docs/cli.md`` is current (regenerate it with `ubench docs` after changing a command or its arguments) and lists
every ``UBENCH_*`` environment variable the code reads."""

from __future__ import annotations

import ast
import re

import pytest

from bench.cli.main import build_parser
from bench.cli.reference import CLI_DOC, ENVIRONMENT, all_parsers, cli_reference
from bench.runtime.paths import PACKAGE_ROOT

VARIABLE = re.compile(r"UBENCH_[A-Z0-9_]+")


def environment_variables(source: str) -> set[str]:
    """Every ``UBENCH_*`` name written as a string constant in ``source`` (``os.environ.get("UBENCH_X")``, or a
    constant such as ``THREADS_ENV = "UBENCH_THREADS"`` read through it)."""
    return {node.value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value)}


def code_variables() -> set[str]:
    """The ``UBENCH_*`` variables named anywhere in the ``bench`` package."""
    return {name for path in PACKAGE_ROOT.rglob("*.py") for name in environment_variables(path.read_text())}


def test_the_cli_reference_is_current() -> None:
    assert CLI_DOC.read_text() == cli_reference(), "docs/cli.md is stale: run `ubench docs`"


def test_the_reference_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert cli_reference() == CLI_DOC.read_text()


def test_every_command_and_argument_is_in_the_reference() -> None:
    text = cli_reference()
    for parser in list(all_parsers(build_parser()))[1:]:
        assert f"## `{parser.prog}`" in text
        section = text.split(f"## `{parser.prog}`", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if action.help and action.dest != "help":
                assert " ".join(action.help.split()).replace("|", "\\|") in section, (parser.prog, action.dest)


def test_every_variable_the_code_reads_is_documented() -> None:
    """The variables of ``ENVIRONMENT`` are exactly those the code names; each has its row in docs/cli.md."""
    variables = code_variables()
    assert {"UBENCH_RESULTS", "UBENCH_CACHE", "UBENCH_THREADS", "UBENCH_DEVICE"} <= variables
    assert set(ENVIRONMENT) == variables, "add the variable to bench/cli/reference.py's ENVIRONMENT, then `ubench docs`"
    section = CLI_DOC.read_text().split("## Environment variables", 1)[1]
    for name, (what, default) in ENVIRONMENT.items():
        assert f"| `{name}` | {what} | {default} |" in section


def test_the_scan_sees_a_variable_read_directly_or_through_a_constant() -> None:
    source = ('import os\nTHREADS_ENV = "UBENCH_NEW_THREADS"\n\n\ndef f():\n    return os.environ.get("UBENCH_X", "")'
              ' or os.getenv("UBENCH_Y")\n\nPREFIXES = ("UBENCH_", "HF_")\n')
    assert environment_variables(source) == {"UBENCH_NEW_THREADS", "UBENCH_X", "UBENCH_Y"}
