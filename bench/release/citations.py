"""Citation metadata: BibTeX entries for the suite, the protocol papers every board uses, and the papers behind
each registered method and task family (``ubench cite``).

Entries carry arXiv ``eprint`` fields, never invented DOIs. They are declared where what they describe is: a method
class's ``bibtex`` (``bench.methods.base.Method``), a task YAML's ``papers:`` (every task file of a family counts for
the family), and the protocol papers here. A method or family without an entry is not an error: ``ubench cite``
writes a ``%`` comment line for it (with the method class's ``paper`` text when it has one). One key must name one
entry everywhere (``collect``: ``SpecError`` otherwise); ``tests/test_release.py`` checks that every registered
method's and task's arXiv id has a matching entry.

The suite's URL is a placeholder (``SUITE_URL``) until the project has a public home; change it there and in
``CITATION.cff``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from importlib.metadata import version as installed
from pathlib import Path

from bench.data.tasks import load_task_config, task_names
from bench.methods.papers import FAN2025_SAM, WANG2025_GRU, WANG2025_RETHINKING
from bench.registry import METHODS
from bench.runtime.paths import REPO_ROOT
from bench.specs.mapping import SpecError
from bench.specs.papers import Paper

SUITE_KEY = "unlearning_bench"
SUITE_NAME = "unlearning-bench"
SUITE_TITLE = "unlearning-bench: a benchmark suite for LLM unlearning under shared budgets and calibrated control"
SUITE_AUTHOR = "{unlearning-bench contributors}"
SUITE_URL = "https://example.org/unlearning-bench"  # placeholder: the project's public URL once it has one

# The protocol every board uses: calibrated control (the mixing / early-stopping columns) and the G-effect. They are
# the suite's own, declared here; a method's papers are declared on its class (``Method.bibtex``) and a task's in
# its YAML file (``papers:``).
WANG2024_CONTROL = Paper(
    "wang2024unlearning",
    author="Wang, Qizhou and Han, Bo and Yang, Puning and Zhu, Jianing and Liu, Tongliang and Sugiyama, Masashi",
    title="Unlearning with Control: Assessing Real-world Utility for Large Language Model Unlearning",
    year=2024, eprint="2406.09179")
PROTOCOL_PAPERS: tuple[Paper, ...] = (WANG2024_CONTROL, WANG2025_RETHINKING)


def suite_version() -> str:
    """The suite's version: ``pyproject.toml``'s ``project.version`` in a checkout, else the installed metadata."""
    pyproject = Path(REPO_ROOT) / "pyproject.toml"
    if pyproject.is_file():
        version = tomllib.loads(pyproject.read_text()).get("project", {}).get("version")
        if version:
            return str(version)
    try:
        return installed(SUITE_NAME)
    except Exception:  # noqa: BLE001 (not installed: an unknown version is still citable)
        return "unknown"


def bibtex(kind: str, key: str, fields: dict[str, str]) -> str:
    """One BibTeX entry; fields in the given order, values in braces (``eprint`` gets ``archivePrefix``)."""
    items = dict(fields)
    if "eprint" in items:
        items.setdefault("archivePrefix", "arXiv")
    width = max(len(name) for name in items)
    body = ",\n".join(f"  {name:<{width}} = {{{value}}}" for name, value in items.items())
    return f"@{kind}{{{key},\n{body}\n}}"


def paper_entry(paper: Paper) -> str:
    """The ``@misc`` entry of ``paper``: author, title, year, eprint, ``howpublished = arXiv:<eprint>``, note."""
    fields = {"author": paper.author, "title": paper.title, "year": str(paper.year), "eprint": paper.eprint,
              "howpublished": f"arXiv:{paper.eprint}", "note": paper.note}
    return bibtex("misc", paper.key, {name: value for name, value in fields.items() if value})


def method_papers(method: str) -> tuple[Paper, ...]:
    """The registered method's BibTeX entries (``Method.bibtex``); () when it has none or is unknown."""
    try:
        return tuple(getattr(METHODS.get(method), "bibtex", ()) or ())
    except LookupError:
        return ()


def option_papers(params: Mapping[str, object]) -> tuple[Paper, ...]:
    """The papers of the objective options an entry's ``params`` switch on: GRU (``rectify: gru``), SAM on the forget
    step (``sam_rho`` > 0); temperature scaling is the control paper's, cited with the protocol."""
    papers = []
    if params.get("rectify") == "gru":
        papers.append(WANG2025_GRU)
    if float(params.get("sam_rho", 0.0) or 0.0) > 0:  # type: ignore[arg-type]
        papers.append(FAN2025_SAM)
    return tuple(papers)


def family_papers(family: str) -> tuple[Paper, ...]:
    """The papers the task files of ``family`` declare (``papers:``), in task-name order, each key once."""
    configs = (load_task_config(task) for task in task_names())
    return tuple(collect(p for config in configs if config.family == family for p in config.papers).values())


def collect(papers: Iterable[Paper]) -> dict[str, Paper]:
    """Key -> paper, first declaration first; two different entries under one key are a ``SpecError``."""
    out: dict[str, Paper] = {}
    for paper in papers:
        known = out.setdefault(paper.key, paper)
        if known != paper:
            differ = [k for k, v in asdict(paper).items() if asdict(known)[k] != v]
            raise SpecError(f"BibTeX key {paper.key}: declared twice with different {', '.join(differ)}")
    return out


def suite_entry(version: str | None = None) -> str:
    version = version or suite_version()
    return bibtex("misc", SUITE_KEY, {"author": SUITE_AUTHOR, "title": SUITE_TITLE, "version": version,
                                      "howpublished": f"\\url{{{SUITE_URL}}}",
                                      "note": f"Software, version {version}"})


def method_paper_text(method: str) -> str:
    """The method class's ``paper`` attribute (free text), or "" when it has none or the method is unknown."""
    try:
        return str(getattr(METHODS.get(method), "paper", "") or "")
    except LookupError:
        return ""
