"""What a command's input must pass before the stage the command runs is imported (``bench.cli.main`` calls a
command's ``check`` first): the board file reads and validates (``LeaderboardSpec.load``: YAML, fields, values),
and every method name it uses is registered (``bench.grid.names``: from the method registry's decorators, without
importing the method modules and torch). A YAML error or a misspelled method then answers in a fraction of a second,
with the message ``plan`` gives. The command checks everything again, and the rest (columns, hyper-parameters,
tasks) only there, in ``plan``."""

from __future__ import annotations

import argparse

from bench.grid.names import check_method_names
from bench.registry import METHODS
from bench.specs.board import LeaderboardSpec


def check_board(args: argparse.Namespace) -> None:
    """``args.board`` (a board file) loads, and each of its method entries names a registered method; the plug-in
    files (``--plugin``, then the board's) are loaded first, as the command loads them."""
    for path in args.plugin:
        METHODS.load_plugin_file(path)
    board = LeaderboardSpec.load(args.board)
    for path in board.plugin_files:
        METHODS.load_plugin_file(path)
    check_method_names(board)


def check_method(args: argparse.Namespace) -> None:
    """``args.method`` is a registered method (plug-in files of ``--plugin`` loaded first)."""
    for path in args.plugin:
        METHODS.load_plugin_file(path)
    METHODS.check(args.method)
