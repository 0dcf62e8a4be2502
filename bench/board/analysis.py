"""The analysis paragraphs of a board, computed from its table and records: robustness and utility (the relearning
attack, lm-eval utility) and the G-effect (GA's e_u, NPO's weights, the KL regulariser's e_r)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.board.attack_analysis import attack_sentence
from bench.board.findings import ga_label, name_list
from bench.board.format import REFERENCE_LABELS
from bench.board.seedstats import significantly
from bench.board.table import column_draws
from bench.geffect.callback import GEFFECT
from bench.grid.columns import parse_key
from bench.specs.board import LeaderboardSpec

GEFFECT_SIGN_LINE = (
    "G-effect (arXiv 2502.19301): e(D) = ∇R(D)ᵀ∇L_u, the first-order fall of the risk R(D) (mean answer NLL) per "
    "unit step of plain gradient descent on the objective L_u; **negative e(forget) = the forget risk rises = "
    "unlearning**, e(retain) ≥ 0 wanted; `geffect/cumulative/<set>` is Σ lr·e(D)·steps over the recorded steps "
    "(forget ↓, others ↑): the paper's quantity, the change gradient descent would make to first order, not the "
    "change AdamW's steps made; `geffect/realised/<set>` is the first-order change along the update AdamW applied, "
    "Σ ∇R(D)ᵀ(θ_t+1 − θ_t)·steps, `geffect/measured/<set>` the change of R(D) measured between the recorded steps, "
    "R(D)(θ_end) − R(D)(θ_0) "
    "(both positive: the risk rose; forget ↑, others ↓), `geffect/realised_error/<set>` and "
    "`geffect/paper_error/<set>` their relative errors against the measured change; "
    "`geffect/top_group_share` (· no direction) the share of |cumulative e(forget)| in the most-affected block "
    "group (shallow/middle/deep thirds), `geffect/top_group` that group.")


def has_geffect(board: LeaderboardSpec, table: pd.DataFrame) -> bool:
    return any(parse_key(c).evaluation == GEFFECT for c in board.columns) or bool(table.attrs.get("geffect"))


def _paired_plain(facts: dict[str, dict], label: str) -> str | None:
    """The plain entry of a "+KL" variant ``label``: the same registered method whose hyper-parameters, apart from
    the retain regulariser (``retain_loss``, ``retain_weight``), are the KL variant's, with ``retain_loss: none``
    (the first such entry in board order), or None."""
    kl = facts[label]
    if kl["hparams"].get("retain_loss") != "kl":
        return None
    rest = {k: v for k, v in kl["hparams"].items() if k not in ("retain_loss", "retain_weight")}
    for other, f in facts.items():
        if other == label or f["method"] != kl["method"] or f["hparams"].get("retain_loss", "none") != "none":
            continue
        if {k: v for k, v in f["hparams"].items() if k not in ("retain_loss", "retain_weight")} == rest:
            return other
    return None


def _npo_label(board: LeaderboardSpec, facts: dict[str, dict]) -> str | None:
    """The board's plain NPO row with G-effect data: labelled ``NPO``, else an ``npo`` entry without regulariser."""
    entries = [m.display for m in board.methods if m.method == "npo" and m.display in facts]
    exact = [d for d in entries if d.lower() == "npo"]
    plain = [d for d in entries if facts[d]["hparams"].get("retain_loss", "none") == "none"]
    pick = exact or plain or entries
    return pick[0] if pick else None


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


def geffect_paragraph(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "G-effect" paragraph, computed from the records behind ``table`` (``table.attrs["geffect"]``, set by
    ``build_table``): GA's cumulative e_u and whether its |e_u| settles (the last two recorded steps), NPO's mean
    weight at the first and last recorded step, for each method with a "+KL" variant on the board, whether
    the variant's cumulative e_r is higher than the plain objective's, and (records that have them) the measured
    change of the forget risk against its two first-order predictions (``_change_sentence``). Empty without
    G-effect data."""
    data = table.attrs.get("geffect") or {}
    ga = ga_label(board)
    paragraphs = []
    for task_name, facts in data.items():
        parts = []
        if ga in facts and "forget" in facts[ga]["cumulative"]:
            e_u = facts[ga]["cumulative"]["forget"]
            direction = "rise" if e_u < 0 else "fall" if e_u > 0 else "not move"
            text = (f"{ga}'s cumulative e_u is {e_u:.4g}: under plain gradient descent with the same learning rates "
                    f"its forget risk would, to first order, {direction} by {abs(e_u):.4g} (the paper's quantity, "
                    f"not the change AdamW's steps made)")
            tail = facts[ga].get("e_u_tail")
            if tail and all(np.isfinite(tail["abs"])):
                (s0, s1), (a0, a1) = tail["steps"], tail["abs"]
                ratio = f" (×{a1 / a0:.3g})" if a0 > 0 else ""
                verdict = "shrinks, so e_u settles" if a1 < a0 else "does not shrink, so e_u does not settle"
                text += f"; |e_u| goes from {a0:.4g} at step {s0} to {a1:.4g} at step {s1}{ratio}: it {verdict}"
            parts.append(text + ".")
        npo = _npo_label(board, facts)
        if npo and "npo_weight" in facts[npo]:
            weight = facts[npo]["npo_weight"]
            steps = weight.get("steps")
            where = f" (step {steps[0]} → {steps[1]})" if steps else " (first → last recorded step)"
            trend = "falls" if weight["last"] < weight["first"] else "does not fall"
            parts.append(f"{npo}'s mean weight w {trend} from {weight['first']:.3f} to {weight['last']:.3f}{where}"
                         + (": it damps the ascent on items already forgotten." if weight["last"] < weight["first"]
                            else "."))
        higher, not_higher = [], []
        for label in facts:
            plain = _paired_plain(facts, label)
            if plain is None:
                continue
            e_kl, e_plain = facts[label]["cumulative"].get("retain"), facts[plain]["cumulative"].get("retain")
            if e_kl is None or e_plain is None:
                continue
            item = f"{label} {e_kl:.4g} vs {plain} {e_plain:.4g}"
            (higher if e_kl > e_plain else not_higher).append(item)
        if higher or not_higher:
            text = "Cumulative e_r with the KL retain regulariser against without: "
            pieces = []
            if higher:
                pieces.append(f"higher for {'; '.join(higher)}")
            if not_higher:
                pieces.append(f"not higher for {'; '.join(not_higher)}")
            parts.append(text + ", ".join(pieces) + ".")
        change = _change_sentence(facts)
        if change:
            parts.append(change)
        if parts:
            prefix = f"On `{task_name}`: " if len(board.tasks) > 1 else ""
            paragraphs.append(f"**G-effect.** {prefix}" + " ".join(parts))
    return "\n\n".join(paragraphs)


def _change_sentence(facts: dict[str, dict]) -> str | None:
    """Per entry whose records have the step changes, the measured change of the forget risk over the recorded
    steps against its realised first-order prediction (along AdamW's applied update) and the paper's (−cumulative
    e_u, plain gradient descent), and which of the two is closer for how many entries; None without such entries."""
    items, realised_closer = [], 0
    for label, f in facts.items():
        measured = (f.get("measured_change") or {}).get("forget")
        realised = (f.get("realised_change") or {}).get("forget")
        paper = f["cumulative"].get("forget")
        if measured is None or realised is None or paper is None:
            continue
        items.append(f"{label} {measured:+.4g} (realised {realised:+.4g}, paper {-paper:+.4g})")
        realised_closer += abs(realised - measured) < abs(-paper - measured)
    if not items:
        return None
    return ("Measured change of the forget risk over the recorded steps (positive: it rose) against the first-order "
            "change along the update AdamW applied (realised) and the paper's −Σ lr·e_u: " + "; ".join(items)
            + f"; the realised one is the closer for {realised_closer} of {len(items)}.")
