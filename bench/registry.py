"""One generic registry for methods, metrics and tasks.

Things register where they are defined, with a decorator::

    @METHODS.register("npo")
    class NPO(Method): ...

A registry discovers its entries by importing every module of its home packages (so there is no hand-kept import
list) and then the entry points of its group (``ubench.methods``, ``ubench.metrics``, ``ubench.evaluations``,
``ubench.tasks``) of every installed distribution, so an out-of-tree package adds entries without touching this
repository. ``EVALUATIONS`` holds the evaluations outside the one-pass engine whose numbers a record stores under
their own key prefix (lm-eval utility, the relearning attack, the G-effect summary: ``bench.runtime.keys``).

Discovery imports every module, and the method modules import torch (seconds). A registry whose home entries all
register with a literal decorator (``indexed_as``: the name of the registry variable, e.g. ``"METHODS"``) can say
whether a name exists without importing them: ``check`` reads the decorators from the sources (``declared_names``),
so a misspelled method name on a board is a one-line error before the stack loads.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from importlib.metadata import entry_points, packages_distributions
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    """An unknown name, a name registered twice, or a plug-in that failed to load."""


class Registry(Generic[T]):
    """A name -> object table with decorator registration, lazy discovery and did-you-mean errors.

    ``kind`` names what is registered ("method"), ``package`` is the home package whose modules are imported on
    first lookup (with ``more_packages``), ``group`` the entry-point group scanned for plug-ins. ``indexed_as``, when
    given, is the variable whose literal ``@<indexed_as>.register("name")`` decorators declare every home entry
    (``check``, ``declared_names``).
    """

    def __init__(self, kind: str, package: str, group: str, more_packages: tuple[str, ...] = (),
                 indexed_as: str = "") -> None:
        self.kind = kind
        self.package = package
        self.packages = (package, *more_packages)
        self.group = group
        self.indexed_as = indexed_as
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._origins: dict[str, str] = {}
        self._discovered = False
        self._discovering = False

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` adds the decorated object under ``name`` (and its aliases)."""

        def decorate(obj: T) -> T:
            self.add(name, obj, aliases=aliases)
            return obj

        return decorate

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> None:
        origin = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise RegistryError(
                    f"{self.kind} name {key!r} is registered twice: by {self._origins.get(key, '?')} and by {origin}"
                )
        self._entries[name] = obj
        self._origins[name] = origin
        for alias in aliases:
            self._aliases[alias] = name
            self._origins[alias] = origin

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name raises with the closest known names."""
        self.discover()
        key = self._aliases.get(name, name)
        if key in self._entries:
            return self._entries[key]
        raise self._unknown(name, [*self._entries, *self._aliases])

    def _unknown(self, name: str, known: Iterable[str]) -> RegistryError:
        """The error for an unknown ``name``: the closest of ``known`` (names and aliases), then all of them."""
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return RegistryError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known)})")

    def check(self, name: str) -> None:
        """Raise ``get``'s error when no entry is named ``name``. Before discovery, a registry with ``indexed_as``
        answers from ``declared_names`` and imports nothing; any other one discovers its entries."""
        if self._discovered or not self.indexed_as:
            self.get(name)
            return
        declared = self.declared_names()
        if name not in declared:
            raise self._unknown(name, declared)

    def declared_names(self) -> set[str]:
        """Every name and alias an entry is or will be registered under, without importing an entry: the literal
        ``@<indexed_as>.register(...)`` decorators of the home packages' modules, the names of the group's entry
        points, and what is registered already (plug-in files). Tested equal to the discovered names."""
        names = {*self._entries, *self._aliases, *(ep.name for ep in entry_points(group=self.group))}
        for package in self.packages:
            spec = importlib.util.find_spec(package)
            for folder in (spec.submodule_search_locations or []) if spec else []:
                for info in pkgutil.iter_modules([folder]):
                    names.update(_decorated_names(Path(folder) / f"{info.name}.py", self.indexed_as))
        return names

    def origin(self, name: str) -> str:
        """Where entry ``name`` comes from: ``built-in`` (this project's package), ``plug-in file PATH``
        (``load_plugin_file``), ``plug-in package DIST VERSION`` (an installed distribution, e.g. through an entry
        point), else ``module NAME``."""
        module = getattr(self.get(name), "__module__", "") or ""
        top = module.split(".")[0]
        if top == self.package.split(".")[0]:
            return "built-in"
        if module in _PLUGIN_FILES:
            return f"plug-in file {_PLUGIN_FILES[module]}"
        dists = packages_distributions().get(top)
        if dists:
            return f"plug-in package {dists[0]} {dist_version(dists[0])}"
        return f"module {module}"

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def discover(self) -> None:
        """Import every module of the home packages, then load the entry-point plug-ins (once)."""
        if self._discovered or self._discovering:
            return
        self._discovering = True
        try:
            for name in self.packages:
                package = importlib.import_module(name)
                for info in pkgutil.iter_modules(package.__path__, prefix=f"{name}."):
                    importlib.import_module(info.name)
            for ep in entry_points(group=self.group):
                if ep.name in self._entries:
                    continue
                try:
                    loaded = ep.load()
                except Exception as exc:  # a broken plug-in must name itself, not crash somewhere later
                    raise RegistryError(
                        f"{self.kind} plug-in {ep.name!r} ({ep.value}) failed to import: {type(exc).__name__}: "
                        f"{(str(exc).strip().splitlines() or [''])[0]}"
                    ) from exc
                if ep.name not in self._entries and ep.name not in self._aliases:
                    self.add(ep.name, loaded)
            self._discovered = True
        finally:
            self._discovering = False

    def load_plugin_file(self, path: str) -> None:
        """Import a single Python file whose decorators register into this (or another) registry."""
        file = Path(path)
        if not file.is_file():
            raise RegistryError(f"{path}: plug-in file not found")
        if file.resolve() in _PLUGIN_FILES.values():
            return
        self.discover()
        module_name = f"ubench_plugin_{file.stem}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise RegistryError(f"{path}: not an importable Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except RegistryError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]  # one line, whatever the plug-in raised
            raise RegistryError(f"{path}: plug-in raised on import: {type(exc).__name__}: {first}") from exc
        _PLUGIN_FILES[module_name] = file.resolve()


# module name -> plug-in file already imported (loading a file twice would register twice; ``origin`` names it)
_PLUGIN_FILES: dict[str, Path] = {}


@cache
def _decorated_names(path: Path, variable: str) -> tuple[str, ...]:
    """The names and aliases of the literal ``@<variable>.register("name", aliases=(...))`` decorators in the Python
    file ``path``, read with ``ast`` (nothing is imported)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ()
    names: list[str] = []
    for node in ast.walk(tree):
        for call in getattr(node, "decorator_list", []):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "register"
                    and isinstance(call.func.value, ast.Name) and call.func.value.id == variable):
                names += [a.value for a in call.args[:1] if isinstance(a, ast.Constant)]
                aliases = [k.value for k in call.keywords if k.arg == "aliases"]
                names += [e.value for a in aliases if isinstance(a, (ast.Tuple, ast.List)) for e in a.elts
                          if isinstance(e, ast.Constant)]
    return tuple(names)


METHODS: Registry = Registry("method", "bench.methods", "ubench.methods", indexed_as="METHODS")
METRICS: Registry = Registry("metric", "bench.metrics", "ubench.metrics")
EVALUATIONS: Registry = Registry("evaluation", "bench.metrics", "ubench.evaluations", more_packages=("bench.geffect",))
TASKS: Registry = Registry("task", "bench.data", "ubench.tasks")
ATTACKS: Registry = Registry("attack", "bench.attacks", "ubench.attacks")
