"""pytest plug-in: a leaderboard YAML is a test file, each (task, method, seed) entry a test item.

``pytest leaderboards/synthetic.yaml`` runs (or reuses) every entry, and at session end writes the board's tables
and prints it. Items are named ``<task>/<split>/<method>/seed<N>``, so ``-k npo`` selects entries and ``--lf``
reruns the failed ones. An entry passes only if its run finished with status ``ok``. A YAML file named on the command
line is collected as a board wherever it lives; collecting a folder takes only the YAML files in a folder named
``leaderboards``, so fixtures elsewhere are left alone.

With pytest-xdist (``pytest leaderboards/synthetic.yaml -n 2``) every worker collects the same items in the same
order (``plan`` is deterministic), the first item of a (task, split) in each worker builds or waits for its
references under a file lock (so they are built once), each item runs its cell into the shared store (atomic
writes), and the controller alone writes and prints the tables, from the boards the workers report.

Tables are written only for a board at least one of whose items ran: ``--collect-only``, a ``-k``/``-m`` that
deselects every entry, or an error before any item ran write nothing. They replace the board's own tables only
when the store holds a record of every cell; otherwise they go to ``<store>/boards/<name>/`` and a line says so
(``bench.release.publish.write_tables``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.board.markdown import to_markdown
from bench.grid.cells import cell_record, plan, run_cell
from bench.grid.executor import prepare_references
from bench.registry import METHODS, RegistryError
from bench.release.publish import NoRecordsError, write_tables
from bench.runtime.logs import quiet
from bench.runtime.paths import results_dir
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

BOARDS = pytest.StashKey[dict[str, LeaderboardSpec]]()  # every collected board, by path
RAN = pytest.StashKey[set[str]]()  # the paths of the boards at least one item of which ran in this process
WORKER_BOARDS = "ubench_boards"  # key of the board paths an xdist worker reports to the controller (those that ran)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ubench", "unlearning-bench leaderboards")
    group.addoption("--ubench-results", default=None, help="result store folder (default: ./results)")
    group.addoption("--ubench-rerun", action="store_true", help="ignore stored records and run entries again")
    group.addoption("--ubench-plugin", action="append", default=[], help="a Python file registering methods")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[BOARDS] = {}
    config.stash[RAN] = set()
    for path in config.getoption("--ubench-plugin") or []:
        METHODS.load_plugin_file(path)


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    """A board: a YAML file named on the command line, or one in a folder named ``leaderboards``."""
    board_file = file_path.parent.name == "leaderboards" or parent.session.isinitpath(file_path)
    if file_path.suffix in (".yaml", ".yml") and board_file:
        return LeaderboardFile.from_parent(parent, path=file_path)
    return None


class SpecCollectError(Exception):
    pass


class LeaderboardFile(pytest.File):
    def collect(self):
        try:
            board = LeaderboardSpec.load(self.path)
            cells = plan(board)
        except (SpecError, RegistryError) as exc:
            raise SpecCollectError(str(exc)) from None
        self.config.stash[BOARDS][str(self.path)] = board
        for cell in cells:
            yield LeaderboardEntry.from_parent(self, name=cell.name, cell=cell, board=board)

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(SpecCollectError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


class EntryFailed(Exception):
    pass


class LeaderboardEntry(pytest.Item):
    def __init__(self, *, cell, board, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cell = cell
        self.board = board

    def runtest(self) -> None:
        self.config.stash[RAN].add(str(self.path))  # from here on the store may hold this board's records
        quiet()
        store = Store(self.config.getoption("--ubench-results") or results_dir())
        reuse = not self.config.getoption("--ubench-rerun")
        if hasattr(self.config, "workerinput") and not self.cell.task.model:
            if not (reuse and cell_record(self.cell, self.board, store)):
                prepare_references(self.cell.task.task, self.cell.task.split, store)
        record = run_cell(self.cell, self.board, store, reuse=reuse)
        self.user_properties.append(("run_id", record.id))
        if not record.ok:
            message = record.error.message if record.error else ""
            raise EntryFailed(f"{self.cell.name}: {record.status}: {message} "
                              f"(record {store.folder(record.FOLDER, record.id)})")

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(EntryFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"leaderboard entry {self.cell.name}"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist controller: collect the boards a worker ran items of (the controller itself collects nothing)."""
    boards = node.config.stash.setdefault(BOARDS, {})
    ran = node.config.stash.setdefault(RAN, set())
    for path in getattr(node, "workeroutput", {}).get(WORKER_BOARDS, []):
        if path not in boards:
            boards[path] = LeaderboardSpec.load(path)
        ran.add(path)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ran = session.config.stash.get(RAN, set())
    boards = {path: board for path, board in session.config.stash.get(BOARDS, {}).items() if path in ran}
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller writes the tables
        session.config.workeroutput[WORKER_BOARDS] = list(boards)
        return
    if not boards:  # no item of any board ran (--collect-only, everything deselected, an early error)
        return
    store = Store(session.config.getoption("--ubench-results") or results_dir())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for board in boards.values():
        try:
            table, paths = write_tables(board, store)
        except NoRecordsError as exc:  # its items ran but stored nothing (e.g. interrupted in the first one)
            if reporter is not None:
                reporter.write_line(f"ubench: {exc}")
            continue
        if reporter is not None:
            reporter.write_sep("=", f"leaderboard {board.name} v{board.version}")
            reporter.write_line(to_markdown(board, table))
            reporter.write_line(f"wrote {paths['markdown']} and {paths['csv']}")
            if table.attrs.get("tables_note"):
                reporter.write_line(f"ubench: {table.attrs['tables_note']}")
