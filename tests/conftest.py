"""Shared fixtures. Tests run on the ``synthetic-mini`` task (20 people, 2-layer model; built once, cached by
content hash under the normal cache dir) and write records into a per-test temporary store."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

MINI = "synthetic-mini"
PLUGINS = Path(__file__).parent / "plugins"
FIXTURE_RECORDS = Path(__file__).parent / "fixtures" / "records"


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


@pytest.fixture
def fixture_store(tmp_path: Path):
    """(board path, store): the fixture board (``tests/fixtures/records/fixture.yaml``: GA and NPO of the default
    board, seed 0) and a store holding its run records and replicate 0's reference records as released (schema 1,
    under their versioned ids), both copied into ``tmp_path`` (the board's tables go to
    ``tmp_path/records/fixture/``). No training: a board test on these runs in seconds."""
    from bench.runtime.store import Store

    root = tmp_path / "records"
    shutil.copytree(FIXTURE_RECORDS, root)
    return root / "fixture.yaml", Store(root)


@pytest.fixture(autouse=True)
def _quiet_transformers() -> None:
    from bench.runtime.logs import quiet

    quiet()


@pytest.fixture
def store(tmp_path: Path):
    from bench.runtime.store import Store

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


RANDOM_LLAMA_VOCAB = 50


def random_llama(seed: int, init_std: float):
    """A random 2-layer Llama (vocab 50, hidden 32, 4 heads, pad 0), deterministic in ``seed``, in eval mode.

    The default init (std 0.02) gives nearly uniform next-token distributions; a larger ``init_std`` makes the
    argmax clear-cut and the predictions context dependent, and sequence log-probs differ between seeds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=RANDOM_LLAMA_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, init_std)
    return model.eval()


def run_board(path: Path):
    """Load the board at ``path``, run every cell into ``<folder>/results`` (each must finish ok) and return
    (board, store)."""
    from bench.grid.cells import plan
    from bench.run.execute import execute
    from bench.runtime.store import Store
    from bench.specs.board import LeaderboardSpec

    board = LeaderboardSpec.load(path)
    store = Store(path.parent.parent / "results")
    for cell in plan(board):
        assert execute(cell.spec, store).ok
    return board, store


def board_records(board, store) -> dict:
    """Each cell's stored run record (``RunRecord``), by the method's display label."""
    from bench.grid.cells import plan

    return {c.method.display: store.load_run(c.spec.run_id) for c in plan(board)}


@pytest.fixture(scope="module")
def mini_target(mini_data):
    """The mini task's target model and its tokenizer, loaded once per module."""
    from bench.models.tiny import get_model, get_tokenizer

    return get_model(mini_data, "target").load(), get_tokenizer(mini_data)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matmuls gain nothing from threads, and intra-op threads spin badly on a busy 2-core machine (seconds
    per forward instead of milliseconds): run a module single-threaded, then restore the setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
