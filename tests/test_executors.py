"""Executors (bench/grid/executors.py): in process, a local worker pool and Ray tasks give the same records; a finished
cell is reused; executor choice and its one-line errors; pytest-xdist on a board; the grid benchmark's report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.grid.executor import ExecutorError, InProcessExecutor
from bench.grid.executors import default_jobs, make_executor
from bench.grid.pool import LocalPoolExecutor
from bench.grid.ray_tasks import RayExecutor
from bench.perf.grid import GridReport, GridRun

from .conftest import MINI, PLUGINS, copy_mini_records, fixture_board, mini_board

# three cells, one of them a plug-in method that fails (NaN loss): workers must load the plug-in file
METHODS = "[{method: ga}, {method: npo}, {method: nan_loss}]"
PLUGIN = str(PLUGINS / "nan_method.py")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, one_torch_thread):
    """The mini board's cells and their records run in this process (1 torch thread, as each worker has)."""
    from bench.grid.cells import plan
    from bench.registry import METHODS as REGISTRY
    from bench.runtime.store import Store
    from bench.specs.board import LeaderboardSpec

    REGISTRY.load_plugin_file(PLUGIN)
    folder = tmp_path_factory.mktemp("grid")
    board = LeaderboardSpec.load(mini_board(folder, methods=METHODS))
    cells = plan(board)
    records = InProcessExecutor().run(cells, board, Store(folder / "inprocess"))
    assert [r.status for r in records] == ["ok", "ok", "failed"]
    return board, cells, records


def _same(records: list, expected: list) -> None:
    assert [r.id for r in records] == [r.id for r in expected]
    for got, want in zip(records, expected):
        assert got.evidence() == want.evidence(), got.label


def test_local_pool_of_two_gives_the_in_process_records(grid, tmp_path: Path) -> None:
    from bench.runtime.store import Store

    board, cells, expected = grid
    store = Store(tmp_path / "pool")
    finished: list[tuple[int, bool]] = []
    records = LocalPoolExecutor(2, threads=1, plugins=[PLUGIN]).run(
        cells, board, store, on_done=lambda i, cell, record, cached: finished.append((i, cached)))
    _same(records, expected)
    assert sorted(finished) == [(0, False), (1, False), (2, False)]
    for record in records:  # written by the workers into the shared store
        assert store.load_run(record.id).evidence() == record.evidence()


def test_ray_local_cluster_gives_the_in_process_records_and_reuses_them(grid, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    from bench.runtime.store import Store

    board, cells, expected = grid
    store = Store(tmp_path / "ray")
    try:
        records = RayExecutor(num_cpus=2, plugins=[PLUGIN]).run(cells, board, store)
    finally:
        ray.shutdown()
    assert not ray.is_initialized()
    _same(records, expected)
    for record in records:
        assert store.load_run(record.id).evidence() == record.evidence()
    cached: list[bool] = []  # a rerun finds every finished cell and runs nothing (no Ray started)
    again = RayExecutor(plugins=[PLUGIN]).run(cells, board, store,
                                              on_done=lambda i, cell, record, hit: cached.append(hit))
    assert cached == [True, True, True] and not ray.is_initialized()
    _same(again, expected)


def test_executor_selection() -> None:
    assert isinstance(make_executor(None, jobs=1), InProcessExecutor)
    assert isinstance(make_executor("pool", jobs=1), InProcessExecutor)
    assert isinstance(make_executor("inprocess", jobs=4), InProcessExecutor)
    pool = make_executor(None, jobs=2, plugins=[PLUGIN])
    assert isinstance(pool, LocalPoolExecutor) and pool.jobs == 2 and pool.plugins == (str(Path(PLUGIN).resolve()),)
    default = make_executor(None)
    assert (default.jobs if isinstance(default, LocalPoolExecutor) else 1) == default_jobs()
    pytest.importorskip("ray")
    ray_executor = make_executor("ray", jobs=3, address="auto")
    assert isinstance(ray_executor, RayExecutor) and ray_executor.jobs == 3 and ray_executor.address == "auto"
    with pytest.raises(ExecutorError, match="--address 10.0.0.1:6379: a cluster address is for --executor ray"):
        make_executor("pool", address="10.0.0.1:6379")
    with pytest.raises(ExecutorError, match="must be >= 0"):
        make_executor(None, jobs=-1)


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ubench: error: ") and "\n" not in err, err
    return err


def test_cli_executor_errors_are_one_line_and_write_nothing(tmp_path: Path, env_results: Path, capsys,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    board = mini_board(tmp_path, methods="[{method: ga}]")
    assert main(["run", str(board), "--address", "10.0.0.1:6379"]) == 2
    assert "--address 10.0.0.1:6379: a cluster address is for --executor ray" in _one_line_error(capsys)
    monkeypatch.setattr("bench.grid.ray_tasks.ray_available", lambda: False)
    assert main(["run", str(board), "--executor", "ray"]) == 2
    assert "--executor ray: ray is not installed" in _one_line_error(capsys)
    assert main(["run", str(board), "--executor", "ray", "--address", "auto"]) == 2
    assert "ray is not installed" in _one_line_error(capsys)
    assert main(["run", str(board), "--address", "auto"]) == 2
    assert "needs ray, which is not installed" in _one_line_error(capsys)
    assert not env_results.exists() and not (board.parent / "mini").exists()


def test_cli_j_1_runs_in_process(tmp_path: Path, env_results: Path, capsys, monkeypatch) -> None:
    board = mini_board(tmp_path, methods="[{method: ga}]")
    used = []
    run = InProcessExecutor.run
    monkeypatch.setattr(InProcessExecutor, "run", lambda self, *a, **k: used.append(self) or run(self, *a, **k))
    assert main(["run", str(board), "-j", "1"]) == 0
    assert len(used) == 1 and "/ga/seed0: ok" in capsys.readouterr().out
    assert main(["run", str(board), "--jobs", "1", "--executor", "inprocess"]) == 0
    assert "/ga/seed0: ok [stored]" in capsys.readouterr().out


def test_pytest_xdist_runs_each_item_once_and_the_controller_writes_the_board(pytester: pytest.Pytester,
                                                                             tmp_path: Path) -> None:
    """Two xdist workers share a board's items; the cells are stored (the fixture records: nothing trains, the
    workers read the controller's store), each item runs once, and the controller alone writes the tables."""
    pytest.importorskip("xdist")
    board = fixture_board(pytester.path, methods="[{method: ga}, {method: npo}]")
    results = copy_mini_records(tmp_path / "results")
    stored = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--ubench-results={results}", str(board),
                                           "-n", "2", "-v")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "[gw0]" in out and "[gw1]" in out
    assert out.count("leaderboard mini v1") == 1
    assert re.search(r"\| (\*\*)?ga(\*\*)? ", out) and re.search(r"\| (\*\*)?npo(\*\*)? ", out)
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == stored  # reused, nothing rewritten
    assert (pytester.path / "leaderboards" / "mini" / "board.md").exists()


def _grid_report(seconds: tuple[float, ...], identical: bool = True) -> GridReport:
    """A report of hand-made runs: 4 cells each, in ``seconds`` for 1 worker, 2 workers and 1 worker x 2 threads."""
    runs = [GridRun(w, t, 4, s, 1.5) for (w, t), s in zip([(1, 1), (2, 1), (1, 2)], seconds)]
    return GridReport(MINI, "forget10", "smoke", ["ga", "gd", "npo", "simnpo"], runs, identical, 0.0 if len(runs) > 2
                      else None, (1.0, 2.0))


def test_grid_benchmark_report_text() -> None:
    """The report's lines and ratios on hand-made timings (the benchmark itself runs in the slow test below)."""
    report = _grid_report((10.0, 5.0, 8.0))
    assert report.ratio(1) == pytest.approx(2.0) and report.ratio(1, 2) == pytest.approx(1.6)
    text = report.text()
    assert "1 worker x 1 thread vs 2 workers x 1 thread (and 1 worker x 2 threads)" in text
    assert re.search(r"(?m)^  2 workers x 1 thread +5\.0 s  0\.800 cells/s \(worker start 1\.5 s, not timed\)$", text)
    assert "ratio 2 workers x 1 thread / 1 worker x 1 thread: 2.00x (goal >= 1.6: ok)" in text
    assert "ratio 2 workers x 1 thread / 1 worker x 2 threads: 1.60x" in text
    assert "records identical across the 1-thread configurations (timings and env aside): yes" in text
    slow = _grid_report((10.0, 8.0), identical=False).text()
    assert "1.25x (goal >= 1.6: under goal)" in slow and "(timings and env aside): NO" in slow
    assert "1 worker x 2 threads" not in slow


@pytest.mark.slow
def test_grid_benchmark_report() -> None:
    """The benchmark on a one-cell grid (no timing is asserted): two pool configurations, identical records. Also
    covered fast: the report by test_grid_benchmark_report_text, the pool's records equal to the in-process ones by
    test_local_pool_of_two_gives_the_in_process_records."""
    from bench.perf.grid import grid_throughput

    report = grid_throughput(cells=1, workers=2, all_cores=False)
    text = report.text()
    assert [(r.workers, r.threads, r.cells) for r in report.runs] == [(1, 1, 1), (2, 1, 1)]
    assert "1 worker x 1 thread vs 2 workers x 1 thread" in text
    assert "cells/s" in text and "ratio 2 workers x 1 thread / 1 worker x 1 thread:" in text
    assert report.identical
    assert "records identical across the 1-thread configurations (timings and env aside): yes" in text
