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
WANG2025_GRU = Paper(
    "wang2025gru",
    author="Wang, Yue and Wang, Qizhou and Liu, Feng and Huang, Wei and Du, Yali and Du, Xiaojiang and Han, Bo",
    title="{GRU}: Mitigating the Trade-off between Unlearning and Retention for Large Language Models",
    year=2025, eprint="2503.09117", note="ICML 2025")
FAN2025_SAM = Paper(
    "fan2025sam",
    author="Fan, Chongyu and Jia, Jinghan and Zhang, Yihua and Ramakrishna, Anil and Hong, Mingyi and Liu, Sijia",
    title="Towards {LLM} Unlearning Resilient to Relearning Attacks: A Sharpness-Aware Minimization Perspective and "
          "Beyond",
    year=2025, eprint="2502.05374", note="ICML 2025")
