"""A board's method names checked against the method registry without importing a method module (no torch):
``plan`` checks them here first, and ``ubench`` checks them here before it loads the stack (``bench.cli.checks``),
so a misspelled or uninstalled method answers in a fraction of a second with one message on both paths."""

from __future__ import annotations

from bench.registry import METHODS, RegistryError
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError, read_yaml


def check_method_names(board: LeaderboardSpec, sources: list[tuple[str, str]] | None = None) -> None:
    """Every method entry of ``board`` names a registered method (``METHODS.check``, from the registry's decorators
    until it has discovered its entries). An unknown one is a ``SpecError`` naming where the entry is written
    (``sources``, default ``board.method_sources()``): ``methods[i].method`` of the board file, or ``method`` of a
    submitted entry file, with the package to install where the entry names the one that provides it (uninstalled
    since)."""
    for entry, (source, where) in zip(board.methods, sources or board.method_sources()):
        try:
            METHODS.check(entry.method)
        except RegistryError as exc:
            package = "" if where else read_yaml(source).get("package")
            if package:
                raise SpecError(f"{source}: method: unknown method {entry.method!r} (install its package: pip "
                                f"install {package})") from exc
            raise SpecError(f"{source}: {where + '.' if where else ''}method: {exc}") from exc
