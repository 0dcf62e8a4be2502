"""What ``ubench`` tells about itself (issue 18): ``--version``, ``ls tiers`` and ``ls methods``."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import tomllib

import pytest

import bench
from bench.cli.main import main
from bench.methods.base import search_space_of
from bench.registry import METHODS
from bench.runtime.checkout import git_state
from bench.runtime.paths import PACKAGE_ROOT, REPO_ROOT
from bench.specs.run import Budget
from bench.specs.tiers import TIER_ONLY, tier_seeds, tier_trials, tiers

from .conftest import PLUGINS


def _exit_output(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """stdout of ``main(argv)`` for an argument that exits while parsing (``--version``), which must exit 0."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def test_version_names_the_package_version_commit_and_dirty_flag(capsys) -> None:
    out = _exit_output(capsys, ["--version"]).strip()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True,
                                text=True).stdout.strip())
    assert out == f"ubench {bench.__version__} ({PACKAGE_ROOT}, git {commit}{', dirty' if dirty else ''})"
    assert git_state().commit == commit and len(commit) == 40


def test_the_package_version_is_the_distribution_version() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert bench.__version__ == project["version"]


def test_ls_tiers_shows_every_field_of_every_tier(capsys) -> None:
    assert main(["ls", "tiers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("field "))
    assert header.split() == ["field", *tiers()]
    rows = {line.split()[0]: line.split()[1:] for line in lines[lines.index(header) + 2:]}
    fields = [f.name for f in dataclasses.fields(Budget) if f.name != "tier"]
    assert list(rows) == [*fields, *TIER_ONLY]
    for column, (name, budget) in enumerate(tiers().items()):
        for field in fields:
            assert rows[field][column] == str(getattr(budget, field))
        assert rows["seeds"][column] == str(tier_seeds(name)) and rows["trials"][column] == str(tier_trials(name))


def test_ls_tiers_name_shows_one_and_an_unknown_one_is_an_error(capsys) -> None:
    assert main(["ls", "tiers", "full"]) == 0
    out = capsys.readouterr().out
    assert "full" in out and "standard" not in out and "cosine" in out
    assert main(["ls", "tiers", "ful"]) == 2
    assert capsys.readouterr().err.strip() == ("ubench: error: unknown budget tier 'ful' (known: "
                                               f"{', '.join(tiers())})")


def _block(out: str, name: str) -> str:
    """The block of method ``name`` in ``ubench ls methods`` output (blocks are separated by a blank line)."""
    blocks = [b for b in out.split("\n\n") if b.split(" ", 1)[0] == name]
    assert len(blocks) == 1, out
    return blocks[0]


def test_ls_methods_shows_each_method_whole(capsys) -> None:
    """Every method: version, origin, the whole summary and docstring (never cut), the paper, and every
    hyper-parameter with its default and declared search space."""
    assert main(["ls", "methods"]) == 0
    out = capsys.readouterr().out
    builtin = [name for name in METHODS.names() if METHODS.get(name).__module__.startswith("bench.methods.")]
    assert len(builtin) >= 14  # plug-ins other tests loaded into this process are listed too, with their origin
    for name in builtin:
        cls = METHODS.get(name)
        block = _block(out, name)
        assert block.splitlines()[0].startswith(f"{name}  (version {cls.version}; built-in: {cls.__module__}.")
        assert cls.summary in block and cls.paper in block
        for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
            assert line in block
        space = search_space_of(cls.Params)
        params = {line.split()[0]: line.split() for line in block.splitlines()[-len(dataclasses.fields(cls.Params)):]}
        for field in dataclasses.fields(cls.Params):
            shown = '""' if field.default == "" else str(field.default)
            assert params[field.name][2] == shown, (name, field.name)
            if field.name in space:
                assert params[field.name][3:] == [f"{v}," for v in space[field.name][:-1]] + [
                    str(space[field.name][-1])], (name, field.name)


def test_ls_methods_name_shows_one_with_its_plugin_file(capsys) -> None:
    plugin = PLUGINS / "nan_method.py"
    METHODS.load_plugin_file(str(plugin))
    assert main(["ls", "methods", "nan_loss"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"nan_loss  (version 1; plug-in file {plugin.resolve()}: ") and "\n\n" not in out.strip()
    assert main(["ls", "methods", "nop"]) == 2
    assert "ubench: error: unknown method 'nop'; did you mean 'npo'" in capsys.readouterr().err


def test_npo_block(capsys) -> None:
    """The block as a reader sees it, for one method, against hand-written expectations."""
    assert main(["ls", "methods", "npo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "npo  (version 1; built-in: bench.methods.npo.NPO)"
    assert lines[1] == "    (2/β)·E softplus(β·(log p_θ(a|q) − log p_ref(a|q)))"
    assert "    paper: Zhang et al. 2024, Negative Preference Optimization (arXiv 2404.05868)" in lines
    assert "    needs (default configuration): reference" in lines
    rule = next(index for index, line in enumerate(lines) if line.strip().startswith("---"))
    rows = {line.split()[0]: line.split() for line in lines[rule + 1:]}
    assert rows["retain_loss"] == ["retain_loss", "str", "none", "none,", "nll,", "kl"]
    assert rows["retain_weight"] == ["retain_weight", "float", "1.0", "0.5,", "1.0,", "2.0,", "5.0"]
    assert rows["beta"] == ["beta", "float", "0.1", "0.05,", "0.1,", "0.5,", "1.0"]


def test_the_old_ls_forms_still_work(capsys) -> None:
    assert main(["ls", "metrics"]) == 0
    assert capsys.readouterr().out.startswith("em ")
    assert main(["ls", "tasks"]) == 0
    assert "synthetic-mini" in capsys.readouterr().out
