"""BibTeX entries cited by more than one method class (``Method.bibtex``), or by a method and the suite's
protocol (``bench.release.citations``)."""

from __future__ import annotations

from bench.specs.papers import Paper

WANG2025_RETHINKING = Paper(
    "wang2025rethinking",
    author="Wang, Qizhou and Zhou, Jin Peng and Zhou, Zhanke and Shin, Saebyeol and Han, Bo and "
           "Weinberger, Kilian Q.",
    title="Rethinking {LLM} Unlearning Objectives: A Gradient Perspective and Go Beyond",
    year=2025, eprint="2502.19301", note="ICLR 2025")
MAINI2024_TOFU = Paper(
    "maini2024tofu",
    author="Maini, Pratyush and Feng, Zhili and Schwarzschild, Avi and Lipton, Zachary C. and Kolter, J. Zico",
    title="{TOFU}: A Task of Fictitious Unlearning for {LLMs}",
    year=2024, eprint="2401.06121")
