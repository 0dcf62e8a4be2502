"""Processes, interruption, claims and progress of ``ubench run`` (issue 18)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from bench.runtime.claims import Claim, Claims, read_claim
from bench.runtime.progress import AFTER_ENV, progress_on_stderr, slow_step
from bench.runtime.store import Store


def _claims(results: Path) -> list[str]:
    folder = results / "claims"
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


# --- 3. two runs on one store: one computation per cell ------------------------------------------------------------


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
