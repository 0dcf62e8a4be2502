"""Citation metadata: BibTeX entries for the suite, the protocol papers every board uses, and the papers behind
each registered method and task family (``ubench cite``).

Entries carry arXiv ``eprint`` fields, never invented DOIs. ``METHOD_PAPERS`` maps a method's registry name to its
entry keys and ``TASK_PAPERS`` a task family to its keys; a method or family missing from these maps is not an
error: ``ubench cite`` writes a ``%`` comment line for it (with the method class's ``paper`` text when it has one).
``tests/test_release.py`` checks that every registered method's ``paper`` arXiv id has a matching entry here.

The suite's URL is a placeholder (``SUITE_URL``) until the project has a public home; change it there and in
``CITATION.cff``.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version as installed
from pathlib import Path

from bench.registry import METHODS
from bench.runtime.paths import REPO_ROOT

SUITE_KEY = "unlearning_bench"
SUITE_NAME = "unlearning-bench"
SUITE_TITLE = "unlearning-bench: a benchmark suite for LLM unlearning under shared budgets and calibrated control"
SUITE_AUTHOR = "{unlearning-bench contributors}"
SUITE_URL = "https://example.org/unlearning-bench"  # placeholder: the project's public URL once it has one

# key -> fields (BibTeX ``@misc``; ``eprint`` is the arXiv id). Authors as BibTeX ``and`` lists.
ENTRIES: dict[str, dict[str, str]] = {
    "wang2024unlearning": {
        "title": "Unlearning with Control: Assessing Real-world Utility for Large Language Model Unlearning",
        "author": "Wang, Qizhou and Han, Bo and Yang, Puning and Zhu, Jianing and Liu, Tongliang and "
                  "Sugiyama, Masashi",
        "year": "2024", "eprint": "2406.09179"},
    "wang2025rethinking": {
        "title": "Rethinking {LLM} Unlearning Objectives: A Gradient Perspective and Go Beyond",
        "author": "Wang, Qizhou and Zhou, Jin Peng and Zhou, Zhanke and Shin, Saebyeol and Han, Bo and "
                  "Weinberger, Kilian Q.",
        "year": "2025", "eprint": "2502.19301", "note": "ICLR 2025"},
    "jang2023knowledge": {
        "title": "Knowledge Unlearning for Mitigating Privacy Risks in Language Models",
        "author": "Jang, Joel and Yoon, Dongkeun and Yang, Sohee and Cha, Sungmin and Lee, Moontae and "
                  "Logeswaran, Lajanugen and Seo, Minjoon",
        "year": "2023", "eprint": "2210.01504", "note": "ACL 2023"},
    "liu2022continual": {
        "title": "Continual Learning and Private Unlearning",
        "author": "Liu, Bo and Liu, Qiang and Stone, Peter",
        "year": "2022", "eprint": "2203.12817", "note": "CoLLAs 2022"},
    "zhang2024negative": {
        "title": "Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning",
        "author": "Zhang, Ruiqi and Lin, Licong and Bai, Yu and Mei, Song",
        "year": "2024", "eprint": "2404.05868", "note": "COLM 2024"},
    "fan2024simplicity": {
        "title": "Simplicity Prevails: Rethinking Negative Preference Optimization for {LLM} Unlearning",
        "author": "Fan, Chongyu and Liu, Jiancheng and Lin, Licong and Jia, Jinghan and Zhang, Ruiqi and "
                  "Mei, Song and Liu, Sijia",
        "year": "2024", "eprint": "2410.07163"},
    "maini2024tofu": {
        "title": "{TOFU}: A Task of Fictitious Unlearning for {LLMs}",
        "author": "Maini, Pratyush and Feng, Zhili and Schwarzschild, Avi and Lipton, Zachary C. and "
                  "Kolter, J. Zico",
        "year": "2024", "eprint": "2401.06121"},
    "rafailov2023direct": {
        "title": "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
        "author": "Rafailov, Rafael and Sharma, Archit and Mitchell, Eric and Ermon, Stefano and "
                  "Manning, Christopher D. and Finn, Chelsea",
        "year": "2023", "eprint": "2305.18290", "note": "NeurIPS 2023"},
    "li2024wmdp": {
        "title": "The {WMDP} Benchmark: Measuring and Reducing Malicious Use with Unlearning",
        "author": "Li, Nathaniel and Pan, Alexander and Gopal, Anjali and Yue, Summer and Berrios, Daniel and "
                  "Gatti, Alice and others",
        "year": "2024", "eprint": "2403.03218", "note": "ICML 2024"},
    "yang2025exploring": {
        "title": "Exploring Criteria of Loss Reweighting to Enhance {LLM} Unlearning",
        "author": "Yang, Puning and Wang, Qizhou and Huang, Zhuo and Liu, Tongliang and Zhang, Chengqi and "
                  "Han, Bo",
        "year": "2025", "eprint": "2505.11953", "note": "ICML 2025"},
    "dong2024undial": {
        "title": "{UNDIAL}: Self-Distillation with Adjusted Logits for Robust Unlearning in Large Language Models",
        "author": "Dong, Yijiang River and Lin, Hongzhou and Belkin, Mikhail and Huerta, Ramon and "
                  "Vuli{\\'c}, Ivan",
        "year": "2024", "eprint": "2402.10052", "note": "NAACL 2025"},
    "yang2025ceu": {
        "title": "{CE-U}: Cross Entropy Unlearning",
        "author": "Yang, Bo",
        "year": "2025", "eprint": "2503.01224"},
    "ilharco2023editing": {
        "title": "Editing Models with Task Arithmetic",
        "author": "Ilharco, Gabriel and Ribeiro, Marco Tulio and Wortsman, Mitchell and Gururangan, Suchin and "
                  "Schmidt, Ludwig and Hajishirzi, Hannaneh and Farhadi, Ali",
        "year": "2023", "eprint": "2212.04089", "note": "ICLR 2023"},
    "shi2024muse": {
        "title": "{MUSE}: Machine Unlearning Six-Way Evaluation for Language Models",
        "author": "Shi, Weijia and Lee, Jaechan and Huang, Yangsibo and Malladi, Sadhika and Zhao, Jieyu and "
                  "Holtzman, Ari and Liu, Daogao and Zettlemoyer, Luke and Smith, Noah A. and Zhang, Chiyuan",
        "year": "2024", "eprint": "2407.06460"},
    "hendrycks2021mmlu": {
        "title": "Measuring Massive Multitask Language Understanding",
        "author": "Hendrycks, Dan and Burns, Collin and Basart, Steven and Zou, Andy and Mazeika, Mantas and "
                  "Song, Dawn and Steinhardt, Jacob",
        "year": "2021", "eprint": "2009.03300", "note": "ICLR 2021"},
}

# The protocol every board uses: calibrated control (the mixing / early-stopping columns) and the G-effect.
PROTOCOL_PAPERS: tuple[str, ...] = ("wang2024unlearning", "wang2025rethinking")

# method registry name -> entry keys (the objective's paper first)
METHOD_PAPERS: dict[str, tuple[str, ...]] = {
    "ga": ("jang2023knowledge",),
    "gd": ("liu2022continual",),
    "npo": ("zhang2024negative",),
    "simnpo": ("fan2024simplicity",),
    "idkpo": ("maini2024tofu",),
    "idkdpo": ("rafailov2023direct", "maini2024tofu"),
    "rmu": ("li2024wmdp",),
    "wga": ("wang2025rethinking",),
    "tnpo": ("wang2025rethinking",),
    "wtnpo": ("wang2025rethinking",),
    "satimp": ("yang2025exploring",),
    "undial": ("dong2024undial",),
    "ceu": ("yang2025ceu",),
    "task_vector": ("ilharco2023editing",),
}

# task family -> entry keys. The embedded synthetic task is part of the suite (cited by the suite entry) and
# follows TOFU's design (fictitious people, nested forget splits, forget quality), so it cites TOFU too.
TASK_PAPERS: dict[str, tuple[str, ...]] = {
    "synthetic": ("maini2024tofu",),
    "tofu": ("maini2024tofu",),
    "muse": ("shi2024muse",),
    "wmdp": ("li2024wmdp", "hendrycks2021mmlu"),
}

ARXIV_ID = re.compile(r"\b(\d{4}\.\d{4,5})\b")


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


def paper_entry(key: str) -> str:
    fields = dict(ENTRIES[key])
    fields.setdefault("howpublished", f"arXiv:{fields['eprint']}")
    order = ("author", "title", "year", "eprint", "howpublished", "note")
    return bibtex("misc", key, {name: fields[name] for name in order if name in fields})


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
