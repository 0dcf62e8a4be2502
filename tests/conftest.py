"""Shared fixtures. Tests run on the ``synthetic-mini`` task (20 people, 2-layer model; built once, cached by
content hash under the normal cache dir) and write records into a per-test temporary store.

Tests of what is built from records (tables, findings, plots, HTML, releases, citations, the pytest plug-in's
reuse of stored cells) train nothing: they read real records of the ``fixture_boards`` cells (eight synthetic-mini
cells of seed 0), committed under ``tests/fixtures/mini_records/`` and copied into a temporary store by the
``mini_results`` fixture (or ``copy_mini_records``). Those records are keyed by run id, a content hash of the spec
(method and evaluation versions, task digest, budget): when a change moves the ids, the tests that read them fail
naming ``python -m tests.fixtures.make_records``, which runs the cells again (a minute or two) and rewrites them.
(``tests/fixtures/records/`` is another fixture: two released records of the default board, ``fixture_store``.)"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

MINI = "synthetic-mini"
PLUGINS = Path(__file__).parent / "plugins"
FIXTURE_RECORDS = Path(__file__).parent / "fixtures" / "records"
MINI_RECORDS = Path(__file__).parent / "fixtures" / "mini_records"
MAKE_MINI_RECORDS = "python -m tests.fixtures.make_records"
MINI_BUDGET = "budget: {steps: 4, lr: 0.0005, batch_size: 8}"
# the G-effect fixture cells record it at steps 0, 2 and 4 (the G-effect board tests read it)
GEFFECT_BUDGET = "budget: {steps: 4, lr: 0.001, batch_size: 8, callback_every: 2}"
FIXTURE_METHODS = "[{method: ga, label: GA}, {method: ga, label: GA+KL, params: {retain_loss: kl}}, {method: npo}]"
# a run that fails at its first step (NaN loss): a failed record, with its error, among the fixtures
BROKEN = f'{{method: nan_loss, label: Broken, plugin: "{PLUGINS / "nan_method.py"}"}}'
CONTROL_NONE = "control: {kind: none}\n"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def _cuda() -> bool:
    import torch  # only where a test is marked gpu: a pytest run of a board file need not load torch to collect

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _cuda():
        for item in gpu_items:
            item.add_marker(skip_gpu)
    if not config.getoption("--runslow"):
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)


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


def fixture_board(folder: Path, methods: str = FIXTURE_METHODS, columns: str | None = None, sort: str | None = None,
                  extra: str = "", geffect: bool = False) -> Path:
    """``mini_board`` (with ``geffect``: under ``GEFFECT_BUDGET``), optionally with other ``columns`` and ``sort``
    (YAML flow text). Every cell of GA, GA+KL and npo has its record in ``MINI_RECORDS``; on the plain budget
    also ``BROKEN``'s and GA's under ``CONTROL_NONE``. Labels are free (they do not change a run id)."""
    path = mini_board(folder, methods=methods, extra=extra)
    text = path.read_text()
    if MINI_BUDGET not in text:
        raise AssertionError("mini_board changed its budget line: MINI_BUDGET must follow it")
    if geffect:
        text = text.replace(MINI_BUDGET, GEFFECT_BUDGET)
    if columns is not None:
        text = re.sub(r"(?m)^columns: .*$", f"columns: {columns}", text)
    if sort is not None:
        text = re.sub(r"(?m)^sort: .*$", f"sort: {sort}", text)
    path.write_text(text)
    return path


def fixture_boards(folder: Path) -> list[Path]:
    """The boards whose cells the committed mini fixture records hold: every fixture method (``BROKEN`` included)
    on the plain budget, GA under ``control: none``, and GA, GA+KL and npo recording the G-effect."""
    return [fixture_board(folder / "plain", methods=FIXTURE_METHODS[:-1] + f", {BROKEN}]"),
            fixture_board(folder / "control-none", methods="[{method: ga, label: GA}]", extra=CONTROL_NONE),
            fixture_board(folder / "geffect", geffect=True)]


def fixture_cells(folder: Path) -> list:
    """The ``Cell`` of every ``fixture_boards`` cell (its boards written under ``folder``); loads the NaN plug-in."""
    from bench.grid.cells import plan
    from bench.registry import METHODS
    from bench.specs.board import LeaderboardSpec

    if "nan_loss" not in METHODS:
        METHODS.load_plugin_file(str(PLUGINS / "nan_method.py"))
    return [cell for path in fixture_boards(folder) for cell in plan(LeaderboardSpec.load(path))]


def fixture_reference_ids() -> dict[str, str]:
    """The ids of the reference records (by kind: target, oracle; replicate 0) that the fixture cells are measured
    against."""
    from bench.run.references import REFERENCE_KINDS, task_reference_id

    return {kind: task_reference_id(MINI, "forget10", None, kind) for kind in REFERENCE_KINDS}


@functools.cache
def stale_mini_records() -> tuple[str, ...]:
    """The fixture cells (``label/run id``) and references (``ref id``) without a record in ``MINI_RECORDS``
    (empty: the committed records are current)."""
    with tempfile.TemporaryDirectory() as tmp:
        cells = fixture_cells(Path(tmp))
    missing = [f"{c.method.display}/{c.spec.run_id}" for c in cells
               if not (MINI_RECORDS / "runs" / c.spec.run_id / "result.json").is_file()]
    return tuple(missing + [f"reference {i}" for i in fixture_reference_ids().values()
                            if not (MINI_RECORDS / "refs" / i / "result.json").is_file()])


def copy_mini_records(dest: Path) -> Path:
    """Copy the committed mini fixture records into a new store folder ``dest`` and return it; fails, naming the
    command that rewrites them, when a fixture cell or reference has no record (its id moved)."""
    stale = stale_mini_records()
    if stale:
        pytest.fail(f"{MINI_RECORDS} has no record of {', '.join(stale)}: the ids moved (a method, task or "
                    f"evaluation version, or the spec format changed); rewrite them with `{MAKE_MINI_RECORDS}`",
                    pytrace=False)
    shutil.copytree(MINI_RECORDS, dest)
    return dest


@pytest.fixture
def mini_results(tmp_path: Path) -> Path:
    """A fresh result store's root folder, ``tmp_path/results``, holding a copy of the committed mini fixture
    records (the ``fixture_boards`` cells, seed 0, and their reference records)."""
    return copy_mini_records(tmp_path / "results")


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
