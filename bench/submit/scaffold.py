"""``ubench new-method NAME``: a method file from the template (``bench/submit/templates/method_template.py``) and
its submission entry."""

from __future__ import annotations

import ast
import re
from importlib.resources import files
from pathlib import Path

from bench.registry import METHODS
from bench.runtime.store import atomic_write_text
from bench.specs.mapping import SpecError

TEMPLATE_NAME = "template_method"
TEMPLATE_CLASS = "TemplateMethod"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


ENTRY_TEMPLATE = """\
# Submission entry for {name}. Check it and add it to the board with: ubench submit {name}.entry.yaml
# The registered name (see {name}.py) and its version (must equal the class's `version`).
method: {name}
version: "1"
# The row on the board; it must be new there.
label: {name}
paper: "Your Name et al. 2025, Title of the paper (arXiv XXXX.XXXXX)"
authors: [Your Name]
# citation: |
#   @article{{yourname2025, ...}}
description: Confidence-weighted gradient ascent (replace with one line on your method).
# Hyper-parameters: a field of the search space anywhere within its listed range; other fields keep their defaults.
params: {{alpha: 1.0}}
# The budget tier of the board you submit to (bench/specs/tiers.yaml: smoke, standard, full), or, for a board
# with a custom budget, that budget instead of tier, e.g. budget: {{steps: 4, lr: 0.0005, batch_size: 8}}.
tier: standard
# The file that registers the method, relative to this file.
plugin: {name}.py
"""


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part)


def render_method(name: str) -> str:
    """The text of ``bench/submit/templates/method_template.py`` with ``name`` substituted and the decorator
    enabled."""
    template = files("bench.submit.templates").joinpath("method_template.py").read_text()
    imported = {alias.asname or alias.name.split(".")[0]
                for node in ast.parse(template).body if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    camel = _camel(name)
    for cls_name in (camel, f"{camel}Params"):
        if cls_name in imported:
            raise SpecError(f"new-method: name {name!r} gives class {cls_name}, which shadows an import; choose "
                            f"another name")
    text = re.sub(r"^# `ubench new-method` turns.*\n", "", template, count=1, flags=re.M)
    text, n = re.subn(rf'^# (@METHODS\.register\("{TEMPLATE_NAME}"\))$', r"\1", text, count=1, flags=re.M)
    text = re.sub(r"(from bench\.registry import METHODS)  # noqa: F401.*$", r"\1", text, count=1, flags=re.M)
    if n != 1:
        raise RuntimeError("bench/submit/templates/method_template.py lost its registration line")
    text = text.replace(TEMPLATE_CLASS, camel).replace(TEMPLATE_NAME, name)
    compile(text, f"{name}.py", "exec")
    return text


def new_method(name: str, folder: str | Path = ".") -> tuple[Path, Path]:
    """Write ``folder/<name>.py`` (from the template) and ``folder/<name>.entry.yaml``; never overwrites a file.

    Raises ``SpecError`` for a bad or taken name or an existing file."""
    if not NAME_PATTERN.match(name):
        raise SpecError(f"new-method: name {name!r} must be lower case letters, digits and '_', starting with a "
                        f"letter (e.g. my_method)")
    if name in METHODS:
        raise SpecError(f"new-method: method name {name!r} is already registered; choose another name")
    folder = Path(folder)
    code_path, entry_path = folder / f"{name}.py", folder / f"{name}.entry.yaml"
    for path in (code_path, entry_path):
        if path.exists():
            raise SpecError(f"new-method: {path} already exists; refusing to overwrite it")
    code = render_method(name)
    atomic_write_text(code_path, code)
    atomic_write_text(entry_path, ENTRY_TEMPLATE.format(name=name))
    return code_path, entry_path
