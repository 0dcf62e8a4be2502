"""The shape of ``bench/`` as a contract (issue 16): every module and every function stays small enough to read whole,
and imports sit at the top of their module.

- A module has at most ``MAX_MODULE_LINES`` lines.
- A function has at most ``MAX_FUNCTION_LINES`` lines, counted over the whole ``def``: from the ``def`` line to its
  last line, docstring, comments and nested functions included (``end_lineno - lineno + 1``).
- An import inside a function or class body hides a dependency from the layer contract (``tests/test_layers.py``);
  only optional or heavy dependencies load there (``LAZY``, ``LAZY_IN``), each with a comment on its line saying why.

Each test lists every offender, so a failure is the to-do list.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "bench"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# imported where they are used, never at the top: optional or heavy dependencies (the comment on the line says why)
LAZY = ("ray", "lm_eval", "peft", "selenium", "bitsandbytes", "quanto", "optimum", "torchao")  # optimum.quanto
# torch loads only after bench/__init__ has pinned the kernel environment (bench.runtime.numerics)
# datasets, lm-eval's own dependency, is quieted only where lm-eval runs: reading configs and records loads neither
LAZY_IN = {"bench/runtime/numerics.py": ("torch",), "bench/metrics/lm_eval_utility.py": ("datasets",)}


def _modules() -> Iterator[tuple[str, str]]:
    """(path relative to the repository, source) of every module of the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), path.read_text()


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of every function of ``source`` longer than ``limit`` lines, where
    length = ``end_lineno - lineno + 1`` over the ``def`` (decorators excluded, docstring and body included)."""
    out: list[tuple[str, int, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                length = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and length > limit:
                    out.append((name, child.lineno, length))
                walk(child, f"{name}.")
            else:
                walk(child, prefix)

    walk(ast.parse(source), "")
    return out


def nested_imports(source: str) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside a function or class body (module-level ``if`` / ``try`` blocks count as the top)."""
    out: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and nested:
                out.append(child)
            walk(child, nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    walk(ast.parse(source), False)
    return out


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, source in _modules() if (n := len(source.splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_is_over_60_lines() -> None:
    offenders = [f"{name}:{line}: {function} is {length} lines" for name, source in _modules()
                 for function, line, length in long_functions(source)]
    assert not offenders, "\n".join(offenders)


def test_imports_are_at_the_top_of_their_module() -> None:
    problems = []
    for name, source in _modules():
        lines = source.splitlines()
        for node in nested_imports(source):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            allowed = (*LAZY, *LAZY_IN.get(name, ()))
            if getattr(node, "level", 0) or not all(m.split(".")[0] in allowed for m in modules):
                problems.append(f"{name}:{node.lineno}: import of {', '.join(modules)} inside a function")
            elif "#" not in lines[node.lineno - 1]:
                problems.append(f"{name}:{node.lineno}: a deferred import without a comment saying why")
    assert not problems, "\n".join(problems)


def test_the_checker_counts_the_whole_def() -> None:
    source = 'def short():\n    """doc"""\n    return 1\n\n\nclass A:\n    def long(self):\n' + "        x = 1\n" * 4
    assert long_functions(source, limit=3) == [("A.long", 7, 5)]
    assert long_functions(source, limit=5) == []


def test_the_import_check_sees_function_level_imports() -> None:
    source = "import os\ntry:\n    import fcntl\nexcept ImportError:\n    pass\n\ndef f():\n    import ray  # why\n"
    assert [node.lineno for node in nested_imports(source)] == [8]
