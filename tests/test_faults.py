"""A suite that survives faults and bad input (issue 8): kill -9 mid-run then rerun, concurrent writers of one
store, NaN and divergent losses, corrupt records, bad specs and inputs (exit 2, nothing written), byte-identical
records for the same seed, and ``ubench submit``'s sandbox (time limit, memory limit, working directory).
Stores that need cells already run start from the committed fixture records (tests/fixtures/mini_records/); only the
cells a test is about (the killed run, the NaN and diverging methods, the redone corrupt cells) run.

Faults already shown elsewhere: ``test_runs.py::test_nan_loss_is_recorded_as_failed_with_its_step`` and
``test_corrupt_record_is_named_and_skipped`` (the store level), ``test_cli.py`` (bad input, a failed cell exits 1),
``test_registry_and_specs.py::test_plugin_that_raises_on_import_names_its_file``,
``test_runs.py::test_other_seed_other_record`` (another seed trains otherwise)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from bench.cli.main import main
from bench.grid.cells import plan
from bench.runtime.paths import REPO_ROOT
from bench.runtime.records import SCHEMA_VERSION, RunRecord
from bench.runtime.sections import MetricEntry
from bench.runtime.store import CorruptRecordWarning, Store, dumps
from bench.specs.board import LeaderboardSpec

from .conftest import BROKEN, MINI, PLUGINS, copy_mini_records, fixture_board, mini_board

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MINI_YAML = REPO_ROOT / "tasks" / "synthetic" / "mini.yaml"


def _ubench() -> list[str]:
    return [sys.executable, "-m", "bench.cli"]


def _env(**extra: str) -> dict[str, str]:
    """This environment for a ``python -m bench.cli`` subprocess that runs in another folder: ``PYTHONPATH`` names this
    checkout, so the subprocess runs the code under test (not whichever checkout the package is installed from)."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            **extra}


def _tmp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*.tmp"))


def _assert_complete_or_absent(runs: Path, names: set[str] | None = None) -> list[Path]:
    """Every run folder (of ``names`` when given: the committed fixture records keep only ``result.json``) holds a
    complete record (result.json parses, spec.json and per_item.jsonl are there) or none (no result.json). Returns
    the folders with a record."""
    complete = []
    folders = sorted(p for p in runs.iterdir() if p.is_dir() and (names is None or p.name in names)) \
        if runs.is_dir() else []
    for folder in folders:
        result = folder / "result.json"
        if result.exists():
            record = json.loads(result.read_text())  # never half a file
            assert record["schema_version"] == SCHEMA_VERSION and record["id"] == folder.name
            assert (folder / "spec.json").exists() and (folder / "per_item.jsonl").exists(), folder
            assert json.loads((folder / "spec.json").read_text()) == record["spec"]
            complete.append(folder)
    return complete


# --- kill -9 mid-run, then rerun -------------------------------------------------------------------------------


def test_kill_9_mid_run_then_rerun_resumes_without_partial_or_duplicate_records(tmp_path: Path) -> None:
    """``ubench run --jobs 2`` in its own process group is killed with SIGKILL (the CLI and both workers) right
    after a cell finished in it (Broken: its NaN loss fails it at step 1) while npo is running; GA's record was
    stored before (a fixture record). The store holds only complete records, and a rerun reuses them, runs npo
    and builds a board with every cell once."""
    board = fixture_board(tmp_path, methods=f"[{{method: ga, label: GA}}, {BROKEN}, {{method: npo}}]")
    results = copy_mini_records(tmp_path / "results")
    cells = _cell_records(board, results)
    ran = {cells[label].parent.name for label in ("Broken", "npo")}  # the cells this run writes
    for label in ("Broken", "npo"):
        shutil.rmtree(cells[label].parent)
    stored = cells["GA"].read_bytes()
    command = [*_ubench(), "run", str(board), "--results", str(results), "--jobs", "2"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 400
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if re.match(r"\[\d/3\] .*/Broken/seed0: failed", line):
                break
            assert time.monotonic() < deadline, "".join(seen)
        else:
            pytest.fail("the run ended before Broken's cell was reported:\n" + "".join(seen))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes, mid-cell
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    _assert_complete_or_absent(results / "runs", ran)
    before = {label: path.read_bytes() for label, path in cells.items() if path.exists()}
    assert set(before) == {"GA", "Broken"} and before["GA"] == stored, seen  # npo was killed before its record
    assert not (board.parent / "mini" / "board.md").exists()  # killed before the board was written

    rerun = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr  # a failed cell (Broken) exits 1
    progress = [x for x in rerun.stdout.splitlines() if re.match(r"\[\d/3\] ", x)]
    assert len(progress) == 3 and sum("[stored]" in x for x in progress) == 2, progress
    assert all(path.exists() for path in cells.values())
    assert len(_assert_complete_or_absent(results / "runs", ran)) == 2
    for label, data in before.items():  # finished cells were reused, not redone
        assert cells[label].read_bytes() == data
    assert _tmp_files(results) == []
    table = pd.read_csv(board.parent / "mini" / "board.csv").set_index("method")
    methods = table[~table["reference"]]
    assert sorted(methods.index) == ["Broken", "GA", "npo"]
    assert (methods.loc["GA", "status"], methods.loc["npo", "status"]) == ("ok", "ok")
    assert methods.loc["Broken", "status"].startswith("failed: non-finite loss nan")


# --- two processes writing one store ---------------------------------------------------------------------------


def _record(record_id: str, writer: int, i: int) -> RunRecord:
    return RunRecord(id=record_id, status="ok" if writer % 2 else "failed", spec={"writer": writer, "i": i},
                     metrics={"x": MetricEntry(writer * 1000 + i)},
                     extra={"padding": "x" * (2000 * (writer + 1))})  # different sizes: a torn write would not parse


def _hammer(root: str, writer: int, n: int) -> None:
    store = Store(root)
    for i in range(n):
        rows = [{"writer": writer, "i": i, "row": r} for r in range(50 + writer)]
        extra = {"geffect.jsonl": json.dumps({"writer": writer, "i": i}) + "\n"} if writer % 2 == 0 else None
        store.write(_record("shared", writer, i), rows, extra)
        store.write(_record(f"own{writer}", writer, i), rows)


def _read_while_writing(root: str, seconds: float, out) -> None:  # noqa: ANN001
    store = Store(root)
    seen = bad = 0
    stop = time.monotonic() + seconds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while time.monotonic() < stop:
            record = store.load("runs", "shared")
            seen += record is not None
        bad = sum(issubclass(w.category, CorruptRecordWarning) for w in caught)
    out.put((seen, bad))


def test_concurrent_writers_never_mix_the_files_of_one_record(tmp_path: Path) -> None:
    """Four processes write the same record and their own ones 40 times each while a fifth reads: every read is a
    whole record (no CorruptRecordWarning), and afterwards each folder holds the files of exactly one writer's
    version (spec.json, per_item.jsonl, geffect.jsonl and result.json agree), with no temporary files left."""
    root = tmp_path / "results"
    context = multiprocessing.get_context("fork")  # plain file I/O in the children: no torch, so fork is safe
    queue = context.Queue()
    reader = context.Process(target=_read_while_writing, args=(str(root), 4.0, queue))
    writers = [context.Process(target=_hammer, args=(str(root), w, 40)) for w in range(4)]
    reader.start()
    for p in writers:
        p.start()
    for p in [*writers, reader]:
        p.join(120)
        assert p.exitcode == 0
    _seen, bad = queue.get(timeout=10)
    assert bad == 0

    store = Store(root)
    for record_id in ("shared", *(f"own{w}" for w in range(4))):
        folder = store.folder("runs", record_id)
        record = store.load("runs", record_id)
        writer, i = record.spec["writer"], record.spec["i"]
        assert record == _record(record_id, writer, i)
        assert json.loads((folder / "spec.json").read_text()) == {"writer": writer, "i": i}
        rows = store.per_item("runs", record_id)
        assert rows == [{"writer": writer, "i": i, "row": r} for r in range(50 + writer)]
        geffect = folder / "geffect.jsonl"
        if record_id == "shared" and writer % 2 == 0:
            assert json.loads(geffect.read_text()) == {"writer": writer, "i": i}
        else:
            assert not geffect.exists()  # an odd writer's version removed an even writer's extra file
        if record_id != "shared":
            assert (writer, i) == (int(record_id[3:]), 39)  # the last version its only writer wrote
    assert _tmp_files(root) == []


_EXECUTE = """
import json, sys
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.runtime.logs import quiet
from bench.runtime.store import Store
from bench.specs.run import Budget
quiet()
spec = make_run_spec("synthetic-mini", "forget10", "npo", {}, Budget(steps=4, lr=1e-3, batch_size=8, callback_every=2),
                     seed=0)
record = execute(spec, Store(sys.argv[1]), reuse=False)
print(json.dumps({"run_id": spec.run_id, "status": record.status}))
"""


def _execute_in(*roots: Path) -> list[dict]:
    """Run ``_EXECUTE`` (npo, the G-effect recorded every 2 of 4 steps) in one process per store root, all at the
    same time; returns what each printed."""
    procs = [subprocess.Popen([sys.executable, "-c", _EXECUTE, str(root)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for root in roots]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def test_one_spec_alone_and_by_two_concurrent_processes_gives_byte_identical_records(tmp_path: Path) -> None:
    """One RunSpec runs alone into one store, then in two processes at the same time into another. The second
    store holds one complete record, and it is the first one byte for byte: spec.json, per_item.jsonl and
    geffect.jsonl, and result.json once its ``timings`` (wall times) are removed (``env``, which holds no timing:
    versions, device, threads, commit, is compared too). So the same seed gives the same bytes, and two writers of
    one record leave one writer's whole files."""
    (alone,) = _execute_in(tmp_path / "alone")
    done = _execute_in(tmp_path / "shared", tmp_path / "shared")
    assert done[0] == done[1] == alone and alone["status"] == "ok"
    (a,) = _assert_complete_or_absent(tmp_path / "alone" / "runs")
    (b,) = _assert_complete_or_absent(tmp_path / "shared" / "runs")
    assert a.name == b.name == alone["run_id"]
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert {"spec.json", "per_item.jsonl", "geffect.jsonl", "result.json"} <= {p.name for p in a.iterdir()}

    def without_timings(folder: Path) -> str:
        record = json.loads((folder / "result.json").read_text())
        assert set(record["timings"]) >= {"total_seconds", "train_seconds"}
        record.pop("timings")
        return dumps(record)

    assert without_timings(a) == without_timings(b)
    for name in ("spec.json", "per_item.jsonl", "geffect.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # the re-serialisation above is the stored one: only the timings block differs in the file bytes
    assert dumps(json.loads((a / "result.json").read_text())) == (a / "result.json").read_text()
    assert _tmp_files(tmp_path) == []


# --- NaN / inf loss and divergence ------------------------------------------------------------------------------


def _fixture_results(results: Path, keep_failed: bool = True) -> Path:
    """``results`` as a copy of the committed fixture records; without their failed (NaN) run unless
    ``keep_failed``."""
    copy_mini_records(results)
    if not keep_failed:
        for record in (results / "runs").glob("*/result.json"):
            if json.loads(record.read_text())["status"] == "failed":
                record.unlink()
    return results


def _cell_records(board: Path, results: Path) -> dict[str, Path]:
    """The ``result.json`` path of each cell of ``board`` in ``results``, by the entry's display label."""
    return {c.method.display: results / "runs" / c.spec.run_id / "result.json"
            for c in plan(LeaderboardSpec.load(board))}


def test_nan_and_divergent_losses_are_failed_records_with_the_step_on_the_board(tmp_path: Path,
                                                                              env_results: Path, capsys) -> None:
    """The NaN and the diverging method run (GA's record is a stored fixture): failed records with the step."""
    board = fixture_board(tmp_path, methods="[{method: ga}, {method: nan_loss}, {method: diverging_loss}]")
    _fixture_results(env_results, keep_failed=False)
    plugins = ["--plugin", str(PLUGINS / "nan_method.py"), "--plugin", str(PLUGINS / "diverging_method.py")]
    assert main(["run", str(board), "--jobs", "1", *plugins]) == 1
    out = capsys.readouterr().out
    assert "/nan_loss/seed0: failed (non-finite loss nan at step 1)" in out
    assert "/diverging_loss/seed0: failed (non-finite loss -inf at step 3)" in out
    assert "/ga/seed0: ok [stored]" in out

    records = {label: json.loads(path.read_text()) for label, path in _cell_records(board, env_results).items()}
    for method, step in (("nan_loss", 1), ("diverging_loss", 3)):
        error = records[method]["error"]
        assert records[method]["status"] == "failed" and error["type"] == "NonFiniteLoss" and error["step"] == step
    assert records["ga"]["status"] == "ok"

    table = pd.read_csv(board.parent / "mini" / "board.csv").set_index("method")
    assert table.loc["nan_loss", "status"] == "failed: non-finite loss nan at step 1"
    assert table.loc["diverging_loss", "status"] == "failed: non-finite loss -inf at step 3"
    assert table.loc["nan_loss", "seeds"] == "0/1" and table.loc["ga", "status"] == "ok"
    markdown = (board.parent / "mini" / "board.md").read_text()
    for method, status in (("nan_loss", "failed: non-finite loss nan at step 1"),
                           ("diverging_loss", "failed: non-finite loss -inf at step 3")):
        row = next(x for x in markdown.splitlines() if f"| {method} " in x)
        assert row.rstrip(" |").endswith(status), row  # the status cell, last in the main table
    assert main(["board", str(board), *plugins]) == 0  # the board keeps showing them from the records alone
    assert "failed: non-finite loss -inf at step 3" in capsys.readouterr().out


# --- corrupt or truncated records -------------------------------------------------------------------------------


def test_corrupt_records_are_named_once_on_stderr_and_skipped(tmp_path: Path, env_results: Path, capsys) -> None:
    """Two stored records of a board (the fixture records: GA ok, Broken failed, npo ok) are corrupted: the board
    names each once and skips it, and a run redoes exactly those two cells."""
    board = fixture_board(tmp_path, methods=f"[{{method: ga, label: GA}}, {BROKEN}, {{method: npo}}]")
    _fixture_results(env_results)
    cells = _cell_records(board, env_results)
    truncated, garbage = cells["GA"], cells["Broken"]
    truncated.write_text(truncated.read_text()[:100])
    garbage.write_bytes(b"\xff\xfe\x00 not json")
    kept = cells["npo"].read_bytes()

    assert main(["board", str(board)]) == 0
    captured = capsys.readouterr()
    warnings_ = [x for x in captured.err.splitlines() if x]
    assert len(warnings_) == 2, captured.err  # each file once, however often the board reads it
    assert any(x.startswith(f"ubench: warning: {truncated}: corrupt record skipped (") for x in warnings_)
    assert any(x.startswith(f"ubench: warning: {garbage}: corrupt record skipped (") for x in warnings_)
    # a store with cells missing never replaces the board's own tables: its tables go to <store>/boards/<name>/
    table = pd.read_csv(env_results / "boards" / "mini" / "board.csv").set_index("method")
    assert table.loc["GA", "status"] == "missing 1 of 1" and table.loc["Broken", "status"] == "missing 1 of 1"
    assert table.loc["npo", "status"] == "ok"
    assert cells["npo"].read_bytes() == kept  # nothing else lost

    # a run names them once more, redoes those two cells (Broken fails again) and leaves the good record alone
    assert main(["run", str(board), "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    assert len([x for x in captured.err.splitlines() if x.startswith("ubench: warning: ")]) == 2, captured.err
    assert "npo/seed0: ok [stored]" in captured.out and "Broken/seed0: failed (non-finite loss nan" in captured.out
    assert json.loads(truncated.read_text())["status"] == "ok"
    assert json.loads(garbage.read_text())["error"]["type"] == "NonFiniteLoss"
    assert cells["npo"].read_bytes() == kept
    assert main(["board", str(board)]) == 0
    assert capsys.readouterr().err == ""


def test_store_load_names_every_kind_of_bad_record(tmp_path: Path) -> None:
    store = Store(tmp_path)
    folder = store.folder("runs", "x")
    folder.mkdir(parents=True)
    cases = {b"": "corrupt record skipped", b"[1, 2]": "malformed record skipped (expected a JSON object, got list)",
             b'{"schema_version": 3}': "malformed record skipped (unknown record schema 3",
             b'{"schema_version": 1, "status": 3}': "malformed record skipped (field 'status' must be string",
             b'{"schema_version": 1, "error": "boom"}': "malformed record skipped (field 'error' must be object",
             b"[" * 100_000: "corrupt record skipped (nested too deeply)", b"\xc3\x28": "corrupt record skipped"}
    for data, expected in cases.items():
        (folder / "result.json").write_bytes(data)
        with pytest.warns(CorruptRecordWarning) as caught:
            assert store.load("runs", "x") is None
        (message,) = [str(w.message) for w in caught]
        assert message.startswith(f"{folder / 'result.json'}: {expected}") and "\n" not in message, message


# --- bad specs and inputs: one line, exit 2, nothing written ----------------------------------------------------


def _board_with(tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str], list[str]]:
    """(board, extra CLI args, substrings the error line must contain) for one bad-input case."""
    methods = "[{method: ga}]"
    if case == "unknown method":
        board = mini_board(tmp_path, methods="[{method: ga}, {method: nop}]")
        return board, [], [str(board), "methods[1]", "unknown method 'nop'", "did you mean 'npo'"]
    if case == "unknown task":
        board = mini_board(tmp_path, methods=methods)
        board.write_text(board.read_text().replace(f"task: {MINI}", "task: synthetic-mnii"))
        return board, [], [str(board), "tasks[0].task", "unknown task 'synthetic-mnii'", "did you mean"]
    if case == "unknown metric":
        board = mini_board(tmp_path, methods=methods)
        board.write_text(board.read_text().replace("forget/prob", "forget/porb"))
        return board, [], [str(board), "columns[1]", "unknown metric 'porb'", "did you mean 'prob'"]
    if case == "wrong type":
        board = mini_board(tmp_path, methods=methods)
        board.write_text(board.read_text().replace("steps: 4", "steps: four"))
        return board, [], [str(board), "budget.steps", "expected an integer"]
    if case == "hyper-parameter type":
        board = mini_board(tmp_path, methods="[{method: npo, params: {beta: high}}]")
        return board, [], [str(board), "methods[0].params.beta", "expected a number"]
    if case == "hyper-parameter out of range":
        board = mini_board(tmp_path, methods="[{method: npo, params: {beta: -1}}]")
        return board, [], [str(board), "methods[0].params.beta", "must be > 0"]
    if case == "invalid YAML":
        board = mini_board(tmp_path, methods="[{method: ga}")
        return board, [], [str(board), "invalid YAML"]
    if case == "missing oracle":
        models = tmp_path / "models"
        models.mkdir()
        (models / "no_oracle.yaml").write_text("name: no_oracle\ntarget: {hub_id: lab/mini-target, revision: main}\n")
        monkeypatch.setenv("UBENCH_MODELS", str(models))
        board = mini_board(tmp_path, methods=methods)
        board.write_text(board.read_text().replace("split: forget10}", "split: forget10, model: no_oracle}"))
        return board, [], [str(board), "model:", "no_oracle has no retain oracle for synthetic-mini/forget10"]
    if case in ("empty forget set", "task YAML unknown field"):
        task = tmp_path / "tasks" / "bad.yaml"
        task.parent.mkdir()
        text = MINI_YAML.read_text().replace("name: synthetic-mini", "name: bad-mini")
        if case == "empty forget set":
            text = text.replace("n_people: 20", "n_people: 0")
            expected = [str(task), "forget_splits", "forget set of bad-mini/forget10 is empty"]
        else:
            text = text.replace("forget_splits:", "forget_split:")
            expected = [str(task), "forget_split: unknown field", "did you mean 'forget_splits'"]
        task.write_text(text)
        board = mini_board(tmp_path, methods=methods)
        board.write_text(board.read_text().replace(f"task: {MINI}", f"task: {task}"))
        return board, [], expected
    if case == "plug-in raises on import":
        board = mini_board(tmp_path, methods=methods)
        plugin = PLUGINS / "raising_method.py"
        return board, ["--plugin", str(plugin)], [str(plugin), "plug-in raised on import",
                                                  "ImportError: this plug-in cannot be imported"]
    if case == "board plug-in raises on import":
        plugin = tmp_path / "broken_plugin.py"
        plugin.write_text("import json\n\nraise RuntimeError('broken\\nover two lines')\n")
        board = mini_board(tmp_path, methods=f"[{{method: ga}}, {{method: mine, plugin: {plugin}}}]")
        return board, [], [str(plugin), "plug-in raised on import", "RuntimeError: broken"]
    raise AssertionError(case)


BAD_INPUTS = ["unknown method", "unknown task", "unknown metric", "wrong type", "hyper-parameter type",
              "hyper-parameter out of range", "invalid YAML", "missing oracle", "empty forget set",
              "task YAML unknown field", "plug-in raises on import", "board plug-in raises on import"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case: str, tmp_path: Path, env_results: Path,
                                                         monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    board, extra, expected = _board_with(tmp_path, case, monkeypatch)
    for command in ("run", "board"):
        assert main([command, str(board), *extra]) == 2, case
        err = capsys.readouterr().err
        assert err.startswith("ubench: error: ") and err.count("\n") == 1, err
        # a rebuild loads no task data: the board of an empty forget set has no record, which is what it says
        wanted = [str(board), "no record of any"] if (command, case) == ("board", "empty forget set") else expected
        for part in wanted:
            assert part in err, (part, err)
    assert not env_results.exists()
    assert not (board.parent / "mini").exists()


def test_bad_input_from_the_installed_command(tmp_path: Path) -> None:
    """The same through a real process: stderr is exactly one line, exit code 2, nothing written."""
    board = mini_board(tmp_path, methods="[{method: npo, params: {beta: -1}}]")
    done = subprocess.run([*_ubench(), "run", str(board), "--results", str(tmp_path / "results")], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"ubench: error: {board}: methods[0].params.beta: must be > 0, got -1.0\n"
    assert not (tmp_path / "results").exists() and not (board.parent / "mini").exists()


# --- ubench submit: the entry's code runs in a subprocess with limits -------------------------------------------


def _submission(tmp_path: Path, name: str, code: str) -> tuple[Path, Path]:
    """(entry, board): a plug-in file ``<name>.py`` with ``code`` and its entry, and a smoke-tier mini board."""
    (tmp_path / f"{name}.py").write_text(code)
    entry = tmp_path / f"{name}.entry.yaml"
    entry.write_text(f"""method: {name}
version: "1"
paper: "test"
authors: [A. Researcher]
params: {{}}
tier: smoke
plugin: {name}.py
""")
    board = mini_board(tmp_path, methods="[{method: ga}]")
    board.write_text(board.read_text().replace("budget: {steps: 4, lr: 0.0005, batch_size: 8}", "budget: smoke"))
    return entry, board


SLEEPER = """import os, time
from pathlib import Path

Path("sleeper.pid").write_text(str(os.getpid()))  # relative: lands in the sandbox's working directory
time.sleep(10 ** 6)
"""

MEMORY_HOG = '''import os
from pathlib import Path

from bench.methods.base import Method, sequence_nll
from bench.registry import METHODS

Path("cwd.txt").write_text(os.getcwd())  # relative: lands in the sandbox's working directory


@METHODS.register("memory_hog")
class MemoryHog(Method):
    """L = -NLL(forget), after asking for 64 GiB."""

    paper = "test"
    version = "1"

    def forget_loss(self, model, batch, ctx):
        blob = bytearray(64 << 30)
        return -sequence_nll(model, batch.forget).mean() + len(blob) * 0, {}
'''


def test_submission_that_sleeps_forever_is_killed_at_the_time_limit(tmp_path: Path, capsys) -> None:
    entry, board = _submission(tmp_path, "sleeper", SLEEPER)
    work = tmp_path / "work"
    start = time.monotonic()
    code = main(["submit", str(entry), "--board", str(board), "--task", MINI, "--time-limit", "12",
                 "--workdir", str(work)])
    took = time.monotonic() - start
    assert code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "submission FAILED"
    assert "FAIL method: killed at the time limit of 12 s (wall clock; raise it with --time-limit if the method " \
           "is just slow)" in out, out
    assert [x.split(":")[0] for x in out if x.startswith(("PASS", "FAIL", "SKIP"))] == [
        "PASS budget", "PASS label", "FAIL method", "SKIP documentation", "SKIP hyper-parameters", "SKIP smoke run"]
    assert 12 <= took < 42
    pid_file = work / "sleeper.pid"
    if pid_file.exists():  # the plug-in got to run (not killed while the subprocess was still importing torch)
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)  # the whole process group is gone
    entries = board.parent / "mini" / "entries"
    assert not entries.exists()


def test_submission_over_the_memory_limit_fails_cleanly_in_its_working_directory(tmp_path: Path) -> None:
    from bench.submit.sandbox import GIB, SandboxLimits
    from bench.submit.validate import validate_and_submit

    entry, board = _submission(tmp_path, "memory_hog", MEMORY_HOG)
    work = tmp_path / "work"
    report = validate_and_submit(entry, board, MINI, limits=SandboxLimits(time_limit=300, memory_limit=6 * GIB),
                                 workdir=work)
    assert not report.ok and report.lines[-1] == "submission FAILED"
    assert f"sandbox: the entry's code runs in a subprocess in {work.resolve()} (time limit 300 s, memory limit " \
           f"6 GiB)" in report.lines, report.text
    assert "PASS method: 'memory_hog' from plug-in file" in report.text
    smoke = next(x for x in report.lines if x.startswith("FAIL smoke run: "))
    assert "raised MemoryError" in smoke and smoke.endswith("(memory limit 6 GiB; --memory-limit)"), smoke
    # the working directory is the run folder: the plug-in's relative file and the smoke run's store are there
    assert (work / "cwd.txt").read_text() == str(work.resolve())
    assert (work / "run1" / "refs").is_dir()
    assert not (Path.cwd() / "cwd.txt").exists()
    assert not (board.parent / "mini" / "entries").exists()
