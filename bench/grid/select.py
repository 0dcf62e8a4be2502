"""Selecting a board's cells with a pytest ``-k`` expression, so that ``ubench run BOARD -k EXPR`` runs exactly the
entries ``pytest BOARD -k EXPR`` runs (``GA or NPO``, ``not GA``, ``npo and seed0``).

The expression is compiled by pytest's own parser (``_pytest.mark.expression.Expression``) and evaluated by its own
keyword matcher (``KeywordMatcher``: an identifier matches when it is a case-insensitive substring of one of the
names) against the names a pytest item of the cell matches: the parts of its node id, i.e. the board file's folders
below the rootdir pytest would choose for it (``_pytest.config.findpaths.determine_setup``), its file name, and the
cell's name ``task/split/method/seedN`` (``bench.pytest_plugin`` names its items so).
"""

from __future__ import annotations

from pathlib import Path

from _pytest.config.findpaths import determine_setup
from _pytest.mark import KeywordMatcher
from _pytest.mark.expression import Expression

from bench.grid.cells import Cell
from bench.specs.mapping import SpecError


def board_keywords(board_path: str | Path, cwd: Path | None = None) -> set[str]:
    """The names every pytest item of the board file matches under ``-k``: the folders between pytest's rootdir
    (for ``pytest BOARD`` run in ``cwd``) and the file, and the file's name."""
    path = Path(board_path).absolute()
    rootdir = determine_setup(inifile=None, override_ini=None, args=[str(path)], rootdir_cmd_arg=None,
                              invocation_dir=(cwd or Path.cwd()).absolute())[0]
    return set(path.relative_to(rootdir).parts)  # the rootdir is a folder above the file it was found from


def select_cells(cells: list[Cell], expression: str | None, board_path: str | Path) -> list[Cell]:
    """The cells whose pytest items ``pytest BOARD -k expression`` selects (all of them without an expression); a
    malformed expression raises ``SpecError`` (one line, with pytest's message)."""
    text = (expression or "").strip()
    if not text:
        return cells
    try:
        compiled = Expression.compile(text)
    except SyntaxError as exc:
        raise SpecError(f"{board_path}: -k: invalid expression {text!r}: at column {exc.offset}: {exc.msg}") from None
    names = board_keywords(board_path)
    return [cell for cell in cells if compiled.evaluate(KeywordMatcher({*names, cell.name}))]
