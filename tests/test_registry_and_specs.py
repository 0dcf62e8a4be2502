"""One registry (decorators, plug-ins, did-you-mean) and strict specs (errors name file and field)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.registry import METHODS, METRICS, TASKS, Registry, RegistryError
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError
from bench.specs.run import Budget

from .conftest import PLUGINS, mini_board


def test_builtin_entries_register_themselves() -> None:
    assert {"ga", "gd", "npo"} <= set(METHODS.names())
    assert {"prob", "rouge_l", "truth_ratio", "forget_quality", "model_utility", "es", "em"} <= set(METRICS.names())
    assert "synthetic" in TASKS.names()


def test_duplicate_name_is_an_error() -> None:
    registry: Registry = Registry("thing", "bench.methods", "ubench.none")
    registry.add("a", object())
    with pytest.raises(RegistryError, match="registered twice"):
        registry.add("a", object())


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(RegistryError, match="did you mean 'npo'"):
        METHODS.get("nop")


def test_entry_point_plugins_are_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import bench.registry as registry_module

    ep = EntryPoint(name="outside_method", value="tests.plugins.outside:OutsideMethod", group="ubench.methods")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [ep] if group == "ubench.methods" else [])
    registry: Registry = Registry("method", "bench.methods", "ubench.methods")
    assert registry.get("outside_method").__name__ == "OutsideMethod"


def test_plugin_that_raises_on_import_names_its_file() -> None:
    with pytest.raises(RegistryError, match="raising_method.py: plug-in raised on import"):
        METHODS.load_plugin_file(str(PLUGINS / "raising_method.py"))


def test_misspelled_leaderboard_field_names_file_and_field(tmp_path: Path) -> None:
    path = mini_board(tmp_path, extra="colums: [forget/es]\n")
    with pytest.raises(SpecError) as info:
        LeaderboardSpec.load(path)
    message = str(info.value)
    assert str(path) in message and "colums" in message and "did you mean 'columns'" in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "expected"), [
    ("budget: {steps: 0}", "budget.steps: must be >= 1"),
    ("budget: {steps: ten}", "budget.steps: expected an integer"),
    ("budget: {stpes: 3}", "budget.stpes: unknown field; did you mean 'steps'"),
    ("seeds: 3", "seeds: expected a list"),
])
def test_bad_values_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    path = mini_board(tmp_path)
    lines = [line for line in path.read_text().splitlines() if not line.startswith(text.split(":")[0] + ":")]
    path.write_text("\n".join([*lines, text]) + "\n")
    with pytest.raises(SpecError, match=expected.replace("(", r"\(")):
        LeaderboardSpec.load(path)


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "leaderboards" / "broken.yaml"
    path.parent.mkdir()
    path.write_text("name: x\nmethods: [ga\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        LeaderboardSpec.load(path)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("steps", 0, "steps: must be >= 1, got 0"), ("batch_size", 0, "batch_size: must be >= 1, got 0"),
    ("grad_accum", -2, "grad_accum: must be >= 1, got -2"), ("lr", 0.0, "lr: must be > 0, got 0.0"),
    ("warmup_steps", -1, "warmup_steps: must be >= 0, got -1"),
    ("callback_every", -1, "callback_every: must be >= 0, got -1"),
    ("schedule", "step", "schedule: must be constant, linear or cosine, got 'step'"),
    ("forward_passes_per_step", 0, "forward_passes_per_step: must be >= 1, got 0"),
])
def test_budget_rejects_each_invalid_field(field: str, value: object, expected: str) -> None:
    """Each bound of a budget is enforced on construction, naming the field (the defaults construct)."""
    Budget()
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        Budget(**{field: value})


def test_the_method_decorators_declare_every_method() -> None:
    """``METHODS.check`` answers from the decorators in the sources: they name every discovered method (a method
    registered another way would be missed, and this fails)."""
    discovered = {*METHODS.names(), *METHODS._aliases}
    assert METHODS.declared_names() == discovered


def test_check_reads_the_sources_not_the_modules() -> None:
    """A registry not yet discovered checks a name without importing a module (its home modules are imported
    already here, so discovery would find nothing new: only the decorators in the sources can know ``npo``), with
    ``get``'s error over the built-in methods (plug-ins other tests loaded went into ``METHODS`` only)."""
    fresh: Registry = Registry("method", "bench.methods", "ubench.methods", indexed_as="METHODS")
    fresh.check("npo")
    assert not fresh._discovered
    with pytest.raises(RegistryError) as checked:
        fresh.check("nop")
    builtin = sorted(n for n in METHODS.names() if METHODS.get(n).__module__.startswith("bench.methods."))
    assert str(checked.value) == (f"unknown method 'nop'; did you mean 'npo' or 'tnpo' or 'wtnpo'? "
                                  f"(known: {', '.join(builtin)})")


def test_decorated_names_reads_names_and_aliases(tmp_path: Path) -> None:
    from bench.registry import _decorated_names

    source = tmp_path / "m.py"
    source.write_text('@REG.register("a", aliases=("b", "c"))\nclass A: ...\n\n@OTHER.register("d")\nclass D: ...\n'
                      '\n@REG.register(NAME)\ndef f(): ...\n')
    assert _decorated_names(source, "REG") == ("a", "b", "c")


def test_an_entry_says_where_it_comes_from() -> None:
    assert METHODS.origin("npo") == "built-in"
    plugin = PLUGINS / "nan_method.py"
    METHODS.load_plugin_file(str(plugin))
    assert METHODS.origin("nan_loss") == f"plug-in file {plugin.resolve()}"
    from importlib.metadata import version

    import tabulate

    registry: Registry = Registry("thing", "bench.methods", "ubench.none")
    registry.add("table", tabulate.tabulate)  # an entry from an installed distribution, as an entry point gives
    assert registry.origin("table") == f"plug-in package tabulate {version('tabulate')}"
