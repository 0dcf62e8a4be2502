"""``ubench`` answers fast when no stage is needed (issue 18): ``--help``, ``--version``, ``ls tiers``, and input
errors a command's ``check`` finds (a board YAML that does not parse, an unknown method name) load none of the
heavy stack. Each case runs ``python -X importtime -m bench.cli ...`` in a subprocess from this checkout and reads
the modules it imported from the importtime lines."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.main import build_parser, load_handler
from bench.cli.reference import all_parsers
from bench.registry import METHODS

from .conftest import mini_board

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "datasets", "lm_eval", "pandas", "matplotlib", "scipy")


def run_cli(*args: str, cwd: Path = REPO) -> tuple[int, set[str], str]:
    """(exit code, top-level names of the modules imported, stdout and the non-importtime stderr lines) of
    ``python -m bench.cli ARGS`` run from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    other = [line for line in lines if not line.startswith("import time:")]
    return done.returncode, modules - {"cumulative"}, done.stdout + "\n".join(other)


def _heavy(modules: set[str]) -> list[str]:
    return sorted(set(HEAVY) & modules)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["ls", "--help"], ["--version"], ["ls", "tiers"]])
def test_help_version_and_tiers_load_no_stage(args: list[str]) -> None:
    code, modules, out = run_cli(*args)
    assert code == 0, out
    assert "bench" in modules and not _heavy(modules), _heavy(modules)


def test_the_importtime_reader_sees_torch() -> None:
    """The check above can fail: a command that loads torch shows it (``ls methods`` imports the method modules)."""
    code, modules, out = run_cli("ls", "methods", "ga")
    assert code == 0, out
    assert "torch" in _heavy(modules)


def test_a_board_that_does_not_parse_is_an_error_before_the_stack_loads(tmp_path: Path) -> None:
    board = mini_board(tmp_path)
    board.write_text(board.read_text().replace("tasks: [{", "tasks: [{{"))
    code, modules, out = run_cli("run", str(board), cwd=tmp_path)
    assert code == 2 and out.strip().startswith(f"ubench: error: {board}: line ") and "invalid YAML" in out, out
    assert not _heavy(modules), _heavy(modules)


def test_an_unknown_method_is_an_error_before_the_stack_loads(tmp_path: Path) -> None:
    """The message is the one ``plan`` gives (``tests/test_cli.py``), from the method registry's decorators."""
    board = mini_board(tmp_path, methods="[{method: ga}, {method: nop}]")
    builtin = sorted(n for n in METHODS.names() if METHODS.get(n).__module__.startswith("bench.methods."))
    for command in ("run", "board", "tune", "release"):
        code, modules, out = run_cli(command, str(board), cwd=tmp_path)
        assert code == 2, out
        assert out.strip() == (f"ubench: error: {board}: methods[1].method: unknown method 'nop'; did you mean 'npo' "
                               f"or 'tnpo' or 'wtnpo'? (known: {', '.join(builtin)})"), out
        assert not _heavy(modules), (command, _heavy(modules))
    assert not (tmp_path / "results").exists()
    code, modules, out = run_cli("geffect", "--task", "synthetic-mini", "--split", "forget10", "--method", "nop")
    assert code == 2 and "ubench: error: unknown method 'nop'; did you mean 'npo'" in out, out
    assert not _heavy(modules), _heavy(modules)


def test_every_command_names_a_handler_that_exists() -> None:
    handlers = {p.get_default("handler") for p in all_parsers(build_parser())} - {None}
    assert len(handlers) == 20
    for path in handlers:
        assert callable(load_handler(path)), path


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the kernel pin is x86-64 only")
def test_a_handler_loads_torch_after_the_kernels_are_pinned() -> None:
    """Handlers import torch lazily now, still after ``bench/__init__`` pinned the kernels (every handler module is
    under ``bench``): a process with no kernel variable set computes on AVX2 kernels once torch loads after the
    entry point's imports."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "DNNL_MAX_CPU_ISA")}
    code = "import bench.cli.main, sys; assert 'torch' not in sys.modules; import torch; " \
           "print(torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "AVX2", done.stdout + done.stderr
