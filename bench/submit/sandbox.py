"""The sandbox: the entry's code runs in a subprocess with a time and a memory limit.

That bounds runaway or buggy code; it is not a security sandbox (no file-system or network isolation, same user):
see the README's "Submit a method"."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from bench.registry import RegistryError
from bench.runtime.logs import quiet
from bench.runtime.paths import PACKAGE_ROOT
from bench.specs.mapping import SpecError, from_mapping
from bench.submit.checks import check_documentation, check_params, load_method, smoke_run
from bench.submit.entry import SubmissionEntry, first_line

CODE_CHECKS = ("method", "documentation", "hyper-parameters", "smoke run")  # what the subprocess reports, in order
_MESSAGE = "@@ubench-submit "  # prefix of the subprocess's report lines on its stdout (anything else is ignored)
_WORKER = "import sys; from bench.submit.sandbox import worker_main; sys.exit(worker_main(sys.argv[1:]))"
_PATH_VARIABLES = ("UBENCH_TASKS", "UBENCH_CACHE", "UBENCH_MODELS", "UBENCH_RESULTS", "UBENCH_HUB_MIRROR",
                   "PYTHONPATH")
GIB = 1 << 30


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of the subprocess that runs a submission's code (``ubench submit --time-limit --memory-limit``).

    ``time_limit``: wall-clock seconds for everything the entry's code does (importing it, building the method,
    both smoke runs); the process group is killed (SIGKILL) when it runs out, and the CPU time is capped at the
    same seconds per core (``RLIMIT_CPU``) as a backstop. ``memory_limit``: bytes of address space
    (``RLIMIT_AS``); 0 disables it. On a CUDA device the address-space limit is not applied: CUDA reserves far
    more virtual memory than it uses, and ``RLIMIT_AS`` would stop it from initialising."""

    time_limit: float = 900.0
    memory_limit: int = 8 * GIB

    def __post_init__(self) -> None:
        if not self.time_limit > 0:
            raise SpecError(f"--time-limit: must be > 0 seconds, got {self.time_limit}")
        if self.memory_limit < 0:
            raise SpecError(f"--memory-limit: must be >= 0 (0: no limit), got {self.memory_limit}")

    @property
    def memory_text(self) -> str:
        return f"{self.memory_limit / GIB:g} GiB" if self.memory_limit else "none"


def _apply_limits(cpu_seconds: int, memory_bytes: int) -> None:
    """``preexec_fn`` of the sandbox (in the child, between fork and exec): hard limits, so the code cannot raise
    them again. Only ``resource`` calls here (imported before the fork)."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _uses_cuda() -> bool:
    """Whether the smoke runs will compute on a CUDA device (``bench.runtime.device.select_device``'s rule)."""
    name = (os.environ.get("UBENCH_DEVICE") or "auto").strip()
    if name != "auto":
        return name.startswith("cuda")

    return torch.cuda.is_available()


def _child_env(limits: SandboxLimits) -> dict[str, str]:
    """The subprocess's environment: this one, with paths made absolute (its working directory differs), the
    package importable, and glibc's per-thread malloc arenas bounded (64 MiB of address space each would count
    against ``RLIMIT_AS`` on a many-core machine)."""
    env = dict(os.environ)
    for name in _PATH_VARIABLES:
        if env.get(name):
            env[name] = os.pathsep.join(str(Path(p).resolve()) if p else p for p in env[name].split(os.pathsep))
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(PACKAGE_ROOT.parent), env.get("PYTHONPATH", "")) if x)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    if limits.memory_limit:
        env.setdefault("MALLOC_ARENA_MAX", "2")
    return env


def _death(returncode: int, timed_out: bool, limits: SandboxLimits, memory_applied: bool, stderr_tail: str) -> str:
    """One line saying why the subprocess stopped before reporting every check."""
    if timed_out:
        return (f"killed at the time limit of {limits.time_limit:g} s (wall clock; raise it with --time-limit "
                f"if the method is just slow)")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGXCPU":
            return f"killed by SIGXCPU: CPU time limit reached ({limits.time_limit:g} s per core)"
        if name == "SIGKILL" and memory_applied:
            return f"killed by SIGKILL (out of memory? the memory limit is {limits.memory_text})"
        return f"the submission process was killed by {name}"
    tail = f": {stderr_tail}" if stderr_tail else ""
    if "MemoryError" in stderr_tail and memory_applied:
        tail += f" (memory limit {limits.memory_text}; --memory-limit)"
    return f"the submission process exited with code {returncode}{tail}"


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [x.strip() for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _relay(stream: IO[bytes], on_check: Callable[[str, str, str], None], reported: list[str]) -> None:
    """Pass each report line of the worker's stdout to ``on_check`` (once per known check, its detail on one line)
    and append the check to ``reported``; the plug-in's own prints and malformed lines are ignored."""
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if not line.startswith(_MESSAGE):
            continue  # the plug-in's own prints
        try:
            status, check, detail = json.loads(line[len(_MESSAGE):])
        except (ValueError, TypeError):
            continue
        if check in CODE_CHECKS and check not in reported and status in ("PASS", "FAIL", "SKIP"):
            reported.append(check)
            on_check(status, check, " ".join(str(detail).splitlines()))


def _run_worker(job: dict, folder: Path, limits: SandboxLimits, memory_bytes: int,
                on_check: Callable[[str, str, str], None], reported: list[str]) -> tuple[int, bool]:
    """Start ``worker_main`` on ``job`` in its own session in ``folder`` (stderr to ``folder/stderr.log``) under
    ``RLIMIT_CPU`` and ``memory_bytes`` of ``RLIMIT_AS``, relay its reports while it runs, and kill its process
    group when it ends or at the time limit. Returns (exit code, whether the time limit was hit)."""
    cpu_seconds = int(math.ceil(limits.time_limit * max(1, os.cpu_count() or 1))) + 1
    timed_out = False
    with open(folder / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-P", "-c", _WORKER, json.dumps(job)], cwd=folder,
                                env=_child_env(limits), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, start_new_session=True,
                                preexec_fn=functools.partial(_apply_limits, cpu_seconds, memory_bytes))
        reader = threading.Thread(target=_relay, args=(proc.stdout, on_check, reported), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=limits.time_limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group: also anything the plug-in started
            proc.wait()
            reader.join(timeout=10)
            proc.stdout.close()
    return proc.returncode, timed_out


def run_sandboxed(entry: SubmissionEntry, plugin: Path | None, task: str, limits: SandboxLimits,
                  workdir: str | Path | None, on_check: Callable[[str, str, str], None],
                  say: Callable[[str], None] | None = None, source: str = "entry", smoke: bool = True) -> None:
    """Run the code checks (``CODE_CHECKS``) of ``entry`` in a subprocess and pass each result to
    ``on_check(status, check, detail)`` as it arrives. The smoke runs start only when ``smoke`` (every check of the
    caller passed) and the cheap code checks passed (``worker_main``).

    The subprocess (``worker_main``) runs in a new session (its own process group) with ``workdir`` as its
    working directory (the smoke runs' stores are ``workdir/run1`` and ``workdir/run2``; its stderr is
    ``workdir/stderr.log``), ``RLIMIT_CPU`` and ``RLIMIT_AS`` set in a ``preexec_fn`` and a wall-clock timeout,
    after which the whole process group is killed. When it stops early (time limit, a signal, a crash), the first
    unreported check fails with one line saying why and the others are skipped. This bounds time and memory; it is
    not a security sandbox (see the README)."""
    own_folder = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="ubench-submit-")) if own_folder else Path(workdir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    memory_applied = bool(limits.memory_limit) and not _uses_cuda()
    if say is not None:
        memory = limits.memory_text if memory_applied or not limits.memory_limit else "not applied on CUDA"
        say(f"sandbox: the entry's code runs in a subprocess in {folder} (time limit {limits.time_limit:g} s, "
            f"memory limit {memory})")
    job = {"entry": dataclasses.asdict(entry), "plugin": str(plugin) if plugin is not None else None, "task": task,
           "folder": str(folder), "memory_limit": limits.memory_limit if memory_applied else 0, "source": source,
           "smoke": smoke}
    reported: list[str] = []
    returncode, timed_out = _run_worker(job, folder, limits, limits.memory_limit if memory_applied else 0, on_check,
                                        reported)
    missing = [c for c in CODE_CHECKS if c not in reported]
    if missing:
        reason = _death(returncode, timed_out, limits, memory_applied, _last_line(folder / "stderr.log"))
        on_check("FAIL", missing[0], reason)
        for check in missing[1:]:
            on_check("SKIP", check, "the submission process stopped")
    if own_folder:
        shutil.rmtree(folder, ignore_errors=True)


def _cheap_checks(entry: SubmissionEntry, plugin: Path | None, source: str,
                  emit: Callable[[str, str, str], None]) -> tuple[object | None, bool]:
    """``method``, ``documentation`` and ``hyper-parameters`` (none trains): each result to ``emit``; returns (the
    method instance or None when it cannot be built, whether all three passed)."""
    try:
        cls, origin = load_method(entry.method, plugin)
    except (RegistryError, SpecError) as exc:
        emit("FAIL", "method", first_line(exc))
        emit("SKIP", "documentation", "the method is not registered")
        emit("SKIP", "hyper-parameters", "the method is not registered")
        return None, False
    emit("PASS", "method", f"{entry.method!r} from {origin}")
    doc_problems = check_documentation(cls, entry)
    if doc_problems:
        emit("FAIL", "documentation", "; ".join(doc_problems))
    else:
        emit("PASS", "documentation", f"docstring, paper {cls.paper!r}, version {entry.version!r}")
    instance, param_problems = check_params(cls, entry, source)
    if param_problems:
        emit("FAIL", "hyper-parameters", "; ".join(param_problems))
    else:
        shown = ", ".join(f"{k}={v!r}" for k, v in entry.params.items()) or "defaults"
        emit("PASS", "hyper-parameters", f"{shown} (within the declared search space)")
    return instance, not doc_problems and not param_problems


def _smoke_check(entry: SubmissionEntry, job: dict) -> tuple[str, str]:
    """``smoke run``: (PASS or FAIL, detail) of ``smoke_run`` in the job's folder."""
    try:
        ok, detail = smoke_run(entry.method, entry.params, job["task"], Path(job["folder"]))
    except (SpecError, RegistryError) as exc:
        ok, detail = False, first_line(exc)
    if not ok and job.get("memory_limit") and ("MemoryError" in detail or "allocate" in detail):
        detail += f" (memory limit {job['memory_limit'] / GIB:g} GiB; --memory-limit)"
    return "PASS" if ok else "FAIL", detail


def worker_main(argv: list[str]) -> int:
    """The sandboxed subprocess (``run_sandboxed``): load the method, check its documentation and
    hyper-parameters, and only if they and the caller's checks (``job["smoke"]``) passed, run the smoke runs in
    the working directory (fail fast: a failing cheap check costs no training); each result is a report line."""
    job = json.loads(argv[0])
    out = sys.stdout

    def emit(status: str, check: str, detail: str) -> None:
        out.write(_MESSAGE + json.dumps([status, check, detail]) + "\n")
        out.flush()

    quiet()
    entry = from_mapping(SubmissionEntry, job["entry"], "entry")
    plugin = Path(job["plugin"]) if job["plugin"] else None
    instance, passed = _cheap_checks(entry, plugin, job.get("source", "entry"), emit)
    if instance is None:
        emit("SKIP", "smoke run", "the method could not be built")
    elif not (passed and job.get("smoke", True)):
        emit("SKIP", "smoke run", "not run: an earlier check failed (the smoke runs start only when every cheap "
                                  "check passed)")
    else:
        status, detail = _smoke_check(entry, job)
        emit(status, "smoke run", detail)
    return 0
