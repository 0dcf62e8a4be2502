"""Shared fixtures. Tests run on the ``synthetic-mini`` task (20 people, 2-layer model; built once, cached by
content hash under the normal cache dir) and write records into a per-test temporary store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

MINI = "synthetic-mini"
PLUGINS = Path(__file__).parent / "plugins"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _quiet_transformers() -> None:
    from bench.cli import _quiet

    _quiet()


@pytest.fixture
def store(tmp_path: Path):
    from bench.store import Store

    return Store(tmp_path / "results")


@pytest.fixture(scope="session")
def mini_data():
    from bench.data.tasks import load_task

    return load_task(MINI, "forget10")


@pytest.fixture(scope="session")
def nan_method():
    """A plug-in method whose loss is NaN, loaded the way ``--plugin`` loads one."""
    from bench.registry import METHODS

    if "nan_loss" not in METHODS:
        METHODS.load_plugin_file(str(PLUGINS / "nan_method.py"))
    return "nan_loss"


def mini_board(folder: Path, methods: str = "[{method: ga}, {method: gd}, {method: npo}]", extra: str = "") -> Path:
    """Write a small leaderboard over the mini task into ``folder/leaderboards/mini.yaml``."""
    path = folder / "leaderboards" / "mini.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""name: mini
version: "1"
tasks: [{{task: {MINI}, split: forget10}}]
methods: {methods}
seeds: [0]
budget: {{steps: 4, lr: 0.0005, batch_size: 8}}
columns: [forget/es, forget/prob, forget_quality, retain/prob, model_utility]
sort: {{by: forget_quality, descending: true}}
{extra}""")
    return path


@pytest.fixture
def env_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    results = tmp_path / "results"
    monkeypatch.setenv("UBENCH_RESULTS", str(results))
    return results


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
