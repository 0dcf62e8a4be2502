"""Processes, interruption, claims and progress of ``ubench run`` (issue 18)."""

from __future__ import annotations

import re
import time

from bench.runtime.progress import AFTER_ENV, progress_on_stderr, slow_step

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
