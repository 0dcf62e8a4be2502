"""The robustness and utility paragraph of a board, computed from its table and records (the relearning attack, the
attack battery, lm-eval utility); the G-effect paragraph is ``bench.board.geffect_findings``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.board.attack_analysis import attack_sentence
from bench.board.findings import name_list
from bench.board.format import REFERENCE_LABELS
from bench.board.seedstats import significantly
from bench.board.table import column_draws
from bench.specs.board import LeaderboardSpec

RELEARN_KEY, RELEARN_MARGIN = "relearn/forget/es", 0.1
LM_EVAL_KEY = "lm_eval/synthetic_world_mc/acc"


def _draws(table: pd.DataFrame, task: str, column: str, label: str) -> np.ndarray | None:
    return column_draws(table, task, column).get(label)


def _significantly_above(table: pd.DataFrame, task: str, column: str, label: str, base: np.ndarray | None,
                         margin: float, below: bool = False) -> bool:
    """Whether row ``label``'s ``column`` exceeds ``base`` (paired draws) by more than ``margin`` at 95%
    (``below``: falls short of it)."""
    mine = _draws(table, task, column, label)
    if mine is None or base is None:
        return False
    return significantly(base - mine if below else mine - base, margin)


def _relearn_sentence(table: pd.DataFrame, task_name: str, rows: pd.DataFrame, methods: pd.DataFrame) -> str | None:
    """Which of the methods that had forgotten the attacked items (``relearn/forget/es_before`` at most
    ``RELEARN_MARGIN`` above the retain oracle's) recover them beyond the oracle after the relearning attack
    (``relearn/forget/es`` above the oracle's by more than ``RELEARN_MARGIN``, paired bootstrap at 95%); None
    without the columns or the oracle's values."""
    oracle = rows[rows["method"] == REFERENCE_LABELS["oracle"]]
    before_key = RELEARN_KEY + "_before"
    if not ({RELEARN_KEY, before_key} <= set(rows) and len(oracle)
            and np.isfinite(oracle[[RELEARN_KEY, before_key]].to_numpy(float)).all()):
        return None
    base, base_before = float(oracle[RELEARN_KEY].iloc[0]), float(oracle[before_key].iloc[0])
    known = methods[np.isfinite(methods[[RELEARN_KEY, before_key]].to_numpy(float)).all(axis=1)]
    forgot = known[known[before_key] <= base_before + RELEARN_MARGIN]
    oracle_draws = _draws(table, task_name, RELEARN_KEY, REFERENCE_LABELS["oracle"])
    if oracle_draws is None:  # a table without stored draws: the point comparison
        recovered = forgot[forgot[RELEARN_KEY] > base + RELEARN_MARGIN]
    else:
        recovered = forgot[[_significantly_above(table, task_name, RELEARN_KEY, m, oracle_draws,
                                                 RELEARN_MARGIN) for m in forgot["method"]]]
    recovered = recovered.sort_values(RELEARN_KEY, ascending=False)
    text = (f"After the relearning attack (fine-tuning on a quarter of the forget items), the retain oracle "
            f"reaches `{RELEARN_KEY}` = {base:.3f} on the other items ({base_before:.3f} before). ")
    if not len(forgot):
        return text + (f"No method had brought those items within {RELEARN_MARGIN} of the oracle's "
                       f"{base_before:.3f} before the attack.")
    text += (f"Of the {len(forgot)} methods that had forgotten them (ES before at most {RELEARN_MARGIN} "
             "above the oracle's), ")
    if not len(recovered):
        return text + f"none recovers significantly more than {RELEARN_MARGIN} above the oracle."
    top = recovered.iloc[0]
    text += (f"{len(recovered)} recover significantly more than {RELEARN_MARGIN} above the oracle "
             "(paired bootstrap over seeds, 95%): forgetting that "
             f"a little fine-tuning undoes is suppression (most: {top['method']}, "
             f"{float(top[before_key]):.3f} → {float(top[RELEARN_KEY]):.3f})")
    robust = forgot[~forgot["method"].isin(recovered["method"])]
    return text + (f"; not significantly less robust than that: {name_list(list(robust['method']))}."
                   if len(robust) else ".")


def _lm_eval_sentence(board: LeaderboardSpec, table: pd.DataFrame, task_name: str, rows: pd.DataFrame,
                      methods: pd.DataFrame) -> str | None:
    """Which raw endpoints fall below τ·U(target) in lm-eval multiple-choice accuracy (paired bootstrap at 95%;
    the point comparison without stored draws); None without the column or the target's value."""
    target = rows[rows["method"] == REFERENCE_LABELS["target"]]
    if not (LM_EVAL_KEY in rows and len(target) and np.isfinite(target[LM_EVAL_KEY].iloc[0])):
        return None
    u_target = float(target[LM_EVAL_KEY].iloc[0])
    threshold = board.control.tau * u_target
    known = methods[np.isfinite(methods[LM_EVAL_KEY].astype(float))]
    target_draws = _draws(table, task_name, LM_EVAL_KEY, REFERENCE_LABELS["target"])
    lost = known[known[LM_EVAL_KEY] < threshold] if target_draws is None else known[[_significantly_above(
        table, task_name, LM_EVAL_KEY, m, board.control.tau * target_draws, 0.0, below=True)
        for m in known["method"]]]
    lost = lost.sort_values(LM_EVAL_KEY)
    text = (f"Real-world utility through lm-eval (`{LM_EVAL_KEY}`): the target scores {u_target:.3f}; ")
    return text + (f"{len(lost)} of {len(known)} raw endpoints fall significantly below τ times that "
                   f"({threshold:.3f}; paired bootstrap over seeds, 95%): {name_list(list(lost['method']))}."
                   if len(lost) else
                   f"no raw endpoint falls significantly below τ times that ({threshold:.3f}).")


def robustness_paragraph(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "Robustness and utility" paragraph, computed from ``table`` when it has the columns: which methods'
    forget knowledge comes back under the relearning attack beyond what the retain oracle learns from the same
    slice (``relearn/forget/es`` above the oracle's by more than ``RELEARN_MARGIN``), and which lose real-world
    utility (lm-eval multiple-choice accuracy below ``control.tau`` times the target's)."""
    paragraphs = []
    for task_name, rows in table.groupby("task", sort=False):
        methods = rows[~rows["reference"].astype(bool)]
        parts = [text for text in (_relearn_sentence(table, task_name, rows, methods),
                                   attack_sentence(table, task_name, rows, methods),
                                   _lm_eval_sentence(board, table, task_name, rows, methods)) if text is not None]
        if parts:
            prefix = f"On `{task_name}`: " if table["task"].nunique() > 1 else ""
            paragraphs.append(prefix + " ".join(parts))
    if not paragraphs:
        return ""
    return "**Robustness and utility.** " + "\n\n".join(paragraphs)
