"""Processes, interruption, claims and progress of ``ubench run`` (issue 18): workers die with a killed run; a worker
killed mid-cell loses only its own cell, in one line; two runs on one store compute each cell once; Ctrl-C answers at
once and a second one is clean; steps that take more than a few seconds say so on stderr.

The subprocess tests run a real ``python -m bench.cli run`` of the mini board with ``-j 2`` (``PYTHONPATH`` names this
checkout, so the code under test is this one, not another install). Their stores start from the committed fixture
records (tests/fixtures/mini_records/: the references and the GA, GA+KL and npo cells), so only the cells a test is
about train."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import psutil
import pytest

from bench.grid.cells import plan
from bench.grid.executor import IncompleteRun, InProcessExecutor
from bench.runtime.claims import Claim, Claims, read_claim
from bench.runtime.paths import REPO_ROOT
from bench.runtime.progress import AFTER_ENV, progress_on_stderr, slow_step
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec

from .conftest import copy_mini_records, fixture_board

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# cells without a fixture record (they train: a few seconds each), after one with a record (GA)
NEW = "{method: gd}, {method: simnpo}, {method: rmu}"
STARTED = re.compile(r"^ubench: \[\d+/\d+\] start (\S+)$")


class Run:
    """A ``ubench run`` in its own session (its own process group, as a terminal's foreground job), its stdout and
    stderr lines collected as they come, each with the time it came."""

    def __init__(self, board: Path, results: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "bench.cli", "run", str(board), "--results", str(results), *extra]
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
                       "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self.proc = subprocess.Popen(command, cwd=board.parent, env=environment, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[tuple[float, str]]) -> None:  # noqa: ANN001
        for line in stream:
            lines.append((time.monotonic(), line.rstrip("\n")))

    def text(self) -> str:
        return "\n".join(line for _, line in self.out) + "\n--- stderr\n" + "\n".join(line for _, line in self.err)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 300) -> float:
        """The time the ``count``-th stderr line matching ``pattern`` came (fails after ``timeout`` or at exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = [t for t, line in list(self.err) if re.search(pattern, line)]
            if len(seen) >= count:
                return seen[count - 1]
            if self.proc.poll() is not None:
                time.sleep(0.5)  # the readers' last lines
                break
            time.sleep(0.05)
        pytest.fail(f"no {count} stderr line(s) matching {pattern!r}:\n{self.text()}")

    def wait_for_workers(self, count: int = 2, timeout: float = 300) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout
        while len(workers := self.workers()) < count and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
        assert len(workers) == count, self.text()
        return workers

    def workers(self) -> list[psutil.Process]:
        """The worker processes (spawned children; the resource tracker aside)."""
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [c for c in children if "spawn_main" in " ".join(_cmdline(c))]

    def finish(self, timeout: float = 600) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        return code

    def started(self) -> list[str]:
        return [m.group(1) for _, line in self.err if (m := STARTED.match(line))]

    def ended(self) -> dict[str, str]:
        """The cells this run reported on stdout, by name: ``stored`` or the seconds it took here."""
        ends = (re.match(r"^\[\d+/\d+\] (\S+): \w+.* \[(.+)\]$", line) for _, line in self.out)
        return {m.group(1): m.group(2) for m in ends if m}


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _alive(processes: list[psutil.Process]) -> list[int]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _gone(processes: list[psutil.Process], seconds: float) -> list[int]:
    """The pids of ``processes`` still alive after waiting up to ``seconds`` for them to end."""
    deadline = time.monotonic() + seconds
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(processes)


def _board_and_store(tmp_path: Path, methods: str = NEW) -> tuple[Path, Path, dict[str, str]]:
    """The mini board of GA (stored) and ``methods`` (not stored), a store holding the fixture records, and each
    cell's run id by name."""
    board = fixture_board(tmp_path, methods=f"[{{method: ga, label: GA}}, {methods}]")
    results = copy_mini_records(tmp_path / "results")
    ids = {cell.name: cell.spec.run_id for cell in plan(LeaderboardSpec.load(board))}
    return board, results, ids


def _stored(results: Path, run_id: str) -> bool:
    return (results / "runs" / run_id / "result.json").is_file()


def _cells_running(run: Run) -> None:
    """Wait until two cells run, one in each worker (their start lines), and a moment more."""
    run.wait_for(STARTED.pattern, count=2)
    time.sleep(1.0)


def _claims(results: Path) -> list[str]:
    folder = results / "claims"
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


# --- 1. workers die with their run ---------------------------------------------------------------------------------


def test_workers_die_when_the_run_is_killed(tmp_path: Path) -> None:
    """kill -9 of ``ubench run`` (the main process only): its workers end within seconds instead of finishing the grid
    as orphans (parent 1)."""
    board, results, _ = _board_and_store(tmp_path)
    run = Run(board, results, "-j", "2")
    workers: list[psutil.Process] = []
    try:
        workers = run.wait_for_workers(2)
        time.sleep(1.0)
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait()
        assert _gone(workers, 10) == [], "workers outlived their killed run"
    finally:
        run.finish()
        for pid in _alive(workers):  # orphans of a failure: no longer the run's children
            os.kill(pid, signal.SIGKILL)


# --- 2. a dead worker loses its own cell only ----------------------------------------------------------------------


def test_a_killed_worker_loses_only_its_cell_in_one_line(tmp_path: Path) -> None:
    """kill -9 of one worker while both run a cell: one line names the lost cell; the other cell in flight and the
    queued one (on a fresh worker) are stored; no traceback; exit 1 with a rerun hint; its claim is released."""
    board, results, ids = _board_and_store(tmp_path)
    run = Run(board, results, "-j", "2")
    _cells_running(run)
    victim = run.workers()[0]
    victim.kill()
    code = run.finish()
    text = run.text()
    assert code == 1, text
    died = [line for _, line in run.err if " died " in line]
    assert len(died) == 1, text
    lost = re.fullmatch(r"ubench: worker for (\S+) died \(signal 9\); rerun to resume", died[0])
    assert lost and lost.group(1) in ids, text
    assert "Traceback" not in text and "BrokenProcessPool" not in text and "leaked" not in text
    assert not _stored(results, ids[lost.group(1)])
    others = [name for name in ids if name != lost.group(1)]
    assert all(_stored(results, ids[name]) for name in others), text  # the other in flight, the queued one, GA
    assert set(run.ended()) == set(others), text
    assert "ubench: 1 of 4 cells not stored; the stored ones stay, rerun to resume" in text
    assert _claims(results) == []


# --- 3. two runs on one store: one computation per cell ------------------------------------------------------------


def test_two_runs_on_one_store_compute_each_cell_once(tmp_path: Path) -> None:
    """Two ``ubench run``s of one board into one store, started together: each cell is computed by exactly one of
    them (the other reports it stored, after waiting for it where needed); both exit 0; no claim is left."""
    board, results, ids = _board_and_store(tmp_path)
    runs = [Run(board, results, "-j", "1"), Run(board, results, "-j", "1")]
    codes = [run.finish() for run in runs]
    assert codes == [0, 0], "\n=====\n".join(run.text() for run in runs)
    ended = [run.ended() for run in runs]
    for name in ids:
        assert all(name in e for e in ended), (name, ended)
        computed = [e[name] for e in ended if e[name] != "stored"]
        assert len(computed) == (0 if "/GA/" in name else 1), (name, ended)  # GA: a fixture record
    assert sum(len(run.started()) for run in runs) == 3
    assert _claims(results) == []


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _claim_of(process: subprocess.Popen, cell: str, host: str | None = None) -> Claim:
    mine = Claim.of_this_process("other-run", cell)
    return Claim(process.pid, host or mine.host, mine.claimed, psutil.Process(process.pid).create_time(),
                 "other-run", cell)


def _write_claim(store: Store, run_id: str, claim: Claim) -> None:
    path = store.claim_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(claim)))


def test_claims_live_stale_and_released(tmp_path: Path) -> None:
    """A live claim of another process is respected, one of a dead process (or an unreadable one) is taken over, and
    a run releases only its own claims."""
    store = Store(tmp_path)
    sleeper = _sleeper()
    try:
        _write_claim(store, "a", _claim_of(sleeper, "cell a"))
        with Claims(store) as claims:
            other = claims.take("a", "cell a")
            assert other is not None and other.pid == sleeper.pid and other.alive()
            assert claims.take("b", "cell b") is None and read_claim(store.claim_path("b")).token == claims.token
            assert claims.take("b", "cell b") is None  # its own claim
        assert read_claim(store.claim_path("a")).pid == sleeper.pid  # not ours: left alone
        assert not store.claim_path("b").exists()  # ours: released on exit
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not read_claim(store.claim_path("a")).alive()
    store.claim_path("c").write_text("{not json")
    with Claims(store) as claims:
        assert claims.take("a", "cell a") is None  # stale: its owner is dead
        assert claims.take("c", "cell c") is None  # unreadable
        assert {read_claim(store.claim_path(x)).token for x in "ac"} == {claims.token}
    assert _claims(tmp_path) == []


def _ga_board(tmp_path: Path):
    board = LeaderboardSpec.load(fixture_board(tmp_path, methods="[{method: ga, label: GA}, {method: npo}]"))
    return board, plan(board)


def test_a_run_waits_for_a_cell_another_live_run_computes(tmp_path: Path, monkeypatch) -> None:
    """A cell claimed by another live process is not computed: the run waits until its owner stores the record and
    lets go, then reports it as stored (nothing trains here: both records are fixtures)."""
    monkeypatch.setattr("bench.grid.executor.WAIT_SECONDS", 0.1)
    board, cells = _ga_board(tmp_path)
    store = Store(copy_mini_records(tmp_path / "results"))
    ga = store.folder("runs", cells[0].spec.run_id)
    hidden = ga.rename(tmp_path / "ga-record")  # "not computed yet"
    sleeper = _sleeper()
    _write_claim(store, cells[0].spec.run_id, _claim_of(sleeper, cells[0].name))
    computed = []
    monkeypatch.setattr("bench.grid.executor.run_cell", lambda *a, **k: computed.append(a) or pytest.fail("ran"))

    def owner_finishes() -> None:
        time.sleep(1.0)
        hidden.rename(ga)
        store.claim_path(cells[0].spec.run_id).unlink()

    finisher = threading.Thread(target=owner_finishes)
    finisher.start()
    seen: list[tuple[str, bool]] = []
    try:
        started = time.monotonic()
        records = InProcessExecutor().run(cells, board, store, on_done=lambda i, c, r, hit: seen.append((c.name, hit)))
        waited = time.monotonic() - started
    finally:
        finisher.join()
        sleeper.kill()
        sleeper.wait()
    assert computed == [] and waited >= 0.9
    assert [r.id for r in records] == [c.spec.run_id for c in cells]
    assert seen == [(cells[1].name, True), (cells[0].name, True)]  # npo at once, GA once its owner let go


def test_a_cell_claimed_on_another_host_is_reported_running_elsewhere(tmp_path: Path) -> None:
    """A claim from another host cannot be checked: the run does not compute that cell, ends without it
    (``IncompleteRun`` naming the host) and keeps the claim."""
    board, cells = _ga_board(tmp_path)
    store = Store(copy_mini_records(tmp_path / "results"))
    ga = store.folder("runs", cells[0].spec.run_id)
    ga.rename(tmp_path / "ga-record")
    sleeper = _sleeper()
    try:
        _write_claim(store, cells[0].spec.run_id, _claim_of(sleeper, cells[0].name, host="node-17"))
        with pytest.raises(IncompleteRun) as raised:
            InProcessExecutor().run(cells, board, store)
    finally:
        sleeper.kill()
        sleeper.wait()
    [(cell, why)] = raised.value.missing
    assert cell.name == cells[0].name and "running elsewhere" in why and "node-17" in why
    assert store.claim_path(cells[0].spec.run_id).exists()


# --- 4. Ctrl-C -----------------------------------------------------------------------------------------------------


def test_ctrl_c_answers_at_once_and_a_second_one_is_clean(tmp_path: Path) -> None:
    """SIGINT to the run's process group (a terminal's Ctrl-C) mid-cell: the interrupting line comes within seconds
    (was 15 s, after the cells in flight), the run exits 130, the workers are gone, no claim is left, the stored cells
    stay; a second SIGINT during shutdown prints no traceback and no leaked-semaphore warning (it used to hang)."""
    board, results, ids = _board_and_store(tmp_path)
    stored = {p: p.read_bytes() for p in results.rglob("result.json")}
    run = Run(board, results, "-j", "2")
    _cells_running(run)
    workers = run.workers()
    sent = time.monotonic()
    os.killpg(run.proc.pid, signal.SIGINT)
    time.sleep(0.3)
    if run.proc.poll() is None:
        os.killpg(run.proc.pid, signal.SIGINT)
    code = run.finish(60)
    ended = time.monotonic() - sent
    text = run.text()
    answered = run.wait_for("^ubench: interrupting: finishing nothing, keeping stored cells$") - sent
    assert code == 130, text
    assert answered < 5.0 and ended < 20.0, (answered, ended, text)
    assert "Traceback" not in text and "leaked semaphore" not in text, text
    assert _gone(workers, 5) == []
    assert _claims(results) == []
    assert all(path.read_bytes() == data for path, data in stored.items())


# --- 5. progress ---------------------------------------------------------------------------------------------------


def test_slow_steps_are_announced_and_quick_ones_are_not(monkeypatch, capsys) -> None:
    monkeypatch.setenv(AFTER_ENV, "0.3")
    with slow_step("not shown"):  # progress is off outside a run
        time.sleep(0.4)
    with progress_on_stderr():
        with slow_step("quick"):
            pass
        with slow_step("slow"):
            time.sleep(0.6)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "ubench: slow ..." and re.fullmatch(r"ubench: slow: done in 0\.\d+s", err[1]), err
    assert len(err) == 2


def test_a_run_says_what_it_is_doing_on_stderr(tmp_path: Path, capsys, monkeypatch) -> None:
    """``ubench run -j 1`` of one cell: a start line with its count and the phases of the cell on stderr (every step
    announced: ``UBENCH_PROGRESS_AFTER=0``); stdout keeps its one line per cell."""
    from bench.cli.main import main

    monkeypatch.setenv(AFTER_ENV, "0")
    board, results, ids = _board_and_store(tmp_path, methods="{method: gd}")
    assert main(["run", str(board), "--results", str(results), "-j", "1", "-k", "gd"]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    [name] = [n for n in ids if "/gd/" in n]
    assert err[0] == f"ubench: [1/1] start {name}", err
    for phase in ("references", "training", "evaluation", "calibration"):
        assert any(re.fullmatch(rf"ubench: \S+/gd/seed0: {phase}: done in [\d.]+s", line) for line in err), err
    [end] = [line for line in captured.out.splitlines() if line.startswith("[")]
    assert re.fullmatch(rf"\[1/1\] {re.escape(name)}: ok \[[\d.]+s\]", end), captured.out
