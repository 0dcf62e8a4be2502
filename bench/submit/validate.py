"""Submitting an outside method to a board: ``ubench submit ENTRY.yaml`` and ``ubench new-method NAME``.

A submission entry (YAML, parsed into ``SubmissionEntry``) names a registered method, its version, paper, authors,
hyper-parameters and the budget of the board it targets (a named tier, or the board's custom budget mapping).
``validate_and_submit`` runs every check and reports each as one line, ``PASS <check>: <detail>`` or
``FAIL <check>: <reason>`` (``SKIP`` when an earlier failure makes a check impossible or pointless). It fails fast:
every cheap check (none trains) runs first, and the smoke runs only when all of them passed:

* ``budget``: the entry's ``tier`` is the board's tier, or its ``budget`` mapping is the board's custom budget
  (read and validated like a tier); the line says the budget in full;
* ``label``: the label is not on the board yet;
* ``method``: the method is registered (built in, by an installed package's ``ubench.methods`` entry point, or by
  a plug-in file) and where it came from;
* ``documentation``: the class has a docstring (the loss formula), a ``paper``, and the entry's ``version``;
* ``hyper-parameters``: they build the method, set fields lie within the declared search space, and fields outside
  the search space keep their defaults;
* ``smoke run``: two runs under the smallest tier, each into a fresh temporary store, finish ``ok`` with finite
  losses and give identical records (timings and environment aside); the first failing run ends the check.

Only when every check passes is the entry written (atomically) into the board's entries folder, with a copy of its
plug-in file, so the next ``ubench run`` of the board includes it. A malformed entry or board raises ``SpecError``.

The entry's code never runs in this process: ``budget`` and ``label`` read files only, and ``method``,
``documentation``, ``hyper-parameters`` and ``smoke run`` run in a subprocess (``run_sandboxed`` / ``worker_main``)
with a wall-clock time limit, ``RLIMIT_CPU`` and ``RLIMIT_AS`` (``SandboxLimits``), in its own process group and
with its own working directory. That bounds runaway or buggy code; it is not a security sandbox (no file-system or
network isolation, same user): see the README's "Submit a method".
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.runtime.paths import REPO_ROOT
from bench.runtime.store import atomic_write_text
from bench.specs.board import LeaderboardSpec, label_slug
from bench.specs.run import Budget
from bench.specs.tiers import tiers
from bench.submit.entry import SubmissionEntry, SubmissionReport
from bench.submit.sandbox import SandboxLimits, run_sandboxed

DEFAULT_TASK = "synthetic"


def _default_board() -> Path:
    local = Path("leaderboards") / "synthetic.yaml"
    return local if local.exists() else REPO_ROOT / local


def _entry_plugin(entry: SubmissionEntry, entry_path: Path, plugin: str | Path | None) -> Path | None:
    """The plug-in file: ``--plugin`` wins over the entry's ``plugin`` (which is relative to the entry file)."""
    if plugin:
        return Path(plugin)
    if entry.plugin:
        path = Path(entry.plugin)
        return path if path.is_absolute() else entry_path.parent / path
    return None


def _plugin_conflicts(board: LeaderboardSpec, entry: SubmissionEntry, plugin: Path | None) -> str:
    """A reason when another submitted entry of the board brings a different file registering the same name."""
    if plugin is None or not plugin.is_file():
        return ""
    mine = plugin.read_bytes()
    for other in board.methods:
        if other.plugin and other.method == entry.method and Path(other.plugin).is_file():
            if Path(other.plugin).read_bytes() != mine:
                return (f"board {board.name} already has method {entry.method!r} from {other.plugin} with different "
                        f"code; give your method another name or submit a new version under the same file")
    return ""


def _plugin_copy(board: LeaderboardSpec, slug: str, plugin: Path) -> tuple[Path, bool]:
    """Where the plug-in goes in the entries folder: an identical file already there is reused (loading two copies
    would register the method twice); otherwise ``<slug>.py`` (``-`` and ``.`` as ``_``). Returns (path, needs
    writing)."""
    text = plugin.read_bytes()
    folder = board.entries_dir
    if folder.is_dir():
        for existing in sorted(folder.glob("*.py")):
            if existing.read_bytes() == text:
                return existing, False
    return folder / f"{re.sub(r'[^a-z0-9_]', '_', slug)}.py", True  # a valid module name for the plug-in loader


def budget_text(budget: Budget) -> str:
    """The budget in one line: ``tier smoke: 3 steps, lr 0.0002, batch 4 x 1, constant schedule`` (``custom budget``
    without a tier), then the warm-up, clipping and callback interval where set."""
    name = f"tier {budget.tier}" if budget.tier else "custom budget"
    extra = [f"{label} {value}" for label, value in (("warm-up", budget.warmup_steps),
                                                     ("weight decay", budget.weight_decay),
                                                     ("max grad norm", budget.max_grad_norm),
                                                     ("callback every", budget.callback_every)) if value]
    return ", ".join([f"{name}: {budget.steps} steps, lr {budget.lr:g}, batch {budget.batch_size} x "
                      f"{budget.grad_accum}, {budget.schedule} schedule", *extra,
                      f"{budget.forward_passes_per_step} forward passes per micro-batch"])


def budget_mapping(budget: Budget) -> str:
    """The YAML flow mapping an entry writes for ``budget``: steps, lr, batch_size, and every other field that
    differs from ``Budget``'s default."""
    default = Budget()
    fields = {f.name: getattr(budget, f.name) for f in dataclasses.fields(Budget) if f.name != "tier" and (
        f.name in ("steps", "lr", "batch_size") or getattr(budget, f.name) != getattr(default, f.name))}
    return yaml.safe_dump(fields, default_flow_style=True, sort_keys=False, width=1 << 16).strip()


def check_budget(entry: SubmissionEntry, board: LeaderboardSpec) -> tuple[str, str]:
    """``budget``: (PASS or FAIL, detail): the entry's ``tier`` is a known tier and the board's own, or its
    ``budget`` (a custom mapping, validated like a tier when the entry was read) equals the board's custom budget.
    The detail states the budget in full (``budget_text``)."""
    board_budget = board.budget
    if entry.budget is not None:
        if board_budget.tier:
            return "FAIL", (f"board {board.name} runs tier {board_budget.tier!r}, not a custom budget; write "
                            f"tier: {board_budget.tier} instead of budget")
        differ = [f"{f.name} {getattr(entry.budget, f.name)!r} != {getattr(board_budget, f.name)!r}"
                  for f in dataclasses.fields(Budget) if getattr(entry.budget, f.name) != getattr(board_budget, f.name)]
        if differ:
            return "FAIL", f"the entry's budget differs from board {board.name}'s: {'; '.join(differ)}"
        return "PASS", budget_text(board_budget)
    if entry.tier not in tiers():
        return "FAIL", f"unknown budget tier {entry.tier!r} (known: {', '.join(tiers())})"
    if not board_budget.tier:
        return "FAIL", (f"board {board.name} runs a custom budget, not tier {entry.tier!r}; give it in the entry "
                        f"instead of tier: budget: {budget_mapping(board_budget)}")
    if entry.tier != board_budget.tier:
        return "FAIL", f"the entry targets tier {entry.tier!r} but board {board.name} runs tier {board_budget.tier!r}"
    return "PASS", budget_text(board_budget)


def check_label(entry: SubmissionEntry, board: LeaderboardSpec, target: Path,
                 plugin: Path | None) -> tuple[str, str]:
    """``label``: (PASS or FAIL, detail), from files only: the label is new on the board, its entry file name is
    free, and no other entry brings different code under the method's name."""
    if entry.label in {m.display for m in board.methods}:
        return "FAIL", f"{entry.label!r} is already on board {board.name}; choose another label"
    if target.exists():
        return "FAIL", (f"{target} already exists (label {entry.label!r} has the same file name as a submitted "
                        f"entry); choose another label")
    if conflict := _plugin_conflicts(board, entry, plugin):
        return "FAIL", conflict
    return "PASS", f"{entry.label!r} is new on board {board.name}"


def _write_entry(entry: SubmissionEntry, board: LeaderboardSpec, target: Path, plugin: Path | None,
                 slug: str) -> str:
    """Write the passed entry to ``target`` (atomically), its plug-in file into the entries folder unless an
    identical copy is there; returns what the report says about it."""
    written_plugin = ""
    if plugin is not None:
        copy, fresh = _plugin_copy(board, slug, plugin)
        if fresh:
            atomic_write_text(copy, plugin.read_text())
        written_plugin = copy.name
    stored = dataclasses.replace(entry, plugin=written_plugin, submitted=datetime.date.today().isoformat())
    atomic_write_text(target, stored.to_yaml())
    return f" with plug-in {board.entries_dir / written_plugin}" if written_plugin else ""


def validate_and_submit(entry_path: str | Path, board_path: str | Path | None = None, task: str | None = None,
                        plugin: str | Path | None = None,
                        echo: Callable[[str], None] | None = None, limits: SandboxLimits | None = None,
                        workdir: str | Path | None = None) -> SubmissionReport:
    """Check the entry at ``entry_path`` against the board at ``board_path`` and, if every check passes, write it
    into the board's entries folder. ``task`` is the task of the smoke runs (default ``synthetic``), ``plugin`` a
    plug-in file that overrides the entry's ``plugin``, ``echo`` receives each line as soon as it is known.

    The entry's code (importing its plug-in or package, building its method, the two smoke runs) runs only in a
    subprocess under ``limits`` (``run_sandboxed``), with ``workdir`` as its working directory (default: a fresh
    temporary folder, removed afterwards). This process only reads the entry, the board and the plug-in's bytes.
    Fail fast: the smoke runs start only when every cheap check (``budget``, ``label``, ``method``,
    ``documentation``, ``hyper-parameters``) passed.

    A malformed entry or board raises ``SpecError`` (one line naming file and field); method-level problems are
    ``FAIL`` lines of the returned report."""
    entry_path = Path(entry_path)
    entry = SubmissionEntry.load(entry_path)
    board_file = Path(board_path) if board_path else _default_board()
    board = LeaderboardSpec.load(board_file)
    report = SubmissionReport(echo=echo)
    report.say(f"submission {entry_path}: method {entry.method!r} v{entry.version} as {entry.label!r} "
               f"-> board {board.name} ({board_file})")
    status, detail = check_budget(entry, board)
    report.add(status, "budget", detail)
    plugin_path = _entry_plugin(entry, entry_path, plugin)
    slug = label_slug(entry.label)
    target = board.entries_dir / f"{slug}.yaml"
    status, detail = check_label(entry, board, target, plugin_path)
    report.add(status, "label", detail)
    # the entry's code, in the sandbox: method, documentation and hyper-parameters, then, only if every check so
    # far passed, the smoke runs
    run_sandboxed(entry, plugin_path.resolve() if plugin_path is not None else None, task or DEFAULT_TASK,
                  limits or SandboxLimits(), workdir, report.add, say=report.say, source=str(entry_path),
                  smoke=report.ok)

    if report.ok:
        also = _write_entry(entry, board, target, plugin_path, slug)
        report.written = target
        report.say(f"wrote {target}{also}; the next `ubench run {board_file}` includes it")
        report.say("submission PASSED")
    else:
        report.say("submission FAILED")
    return report
