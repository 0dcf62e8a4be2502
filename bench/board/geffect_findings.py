"""The G-effect paragraph of a board (arXiv 2502.19301), computed from its records (``table.attrs["geffect"]``,
``bench.board.table``) and, for significance, the board's shared seed draws of the G-effect columns.

The paper's G-effect e(D) = ∇R(D)ᵀ∇L_u predicts the first-order change of a risk under plain gradient descent;
the suite trains with AdamW. So the paragraph first scores both first-order predictions of the forget risk's change
(the paper's −Σ lr·e_u and the realised change along the updates AdamW applied) against the change measured between
recorded steps, and then states every finding on the prediction that agrees with the measured change for most
entries (the *agreeing quantity*), with the measured change beside it:

* GA: how much its forget risk rose, and whether its per-step change settles (the last two recorded steps);
* NPO: whether its mean weight w falls, and whether its per-step forget change falls with it;
* wrappers and regularisers (a KL retain term, GRU's gradient rectification, a SAM forget step, a temperature): each
  against the board's plain entry of the same method, does the retain risk rise less (the retain effect), and at
  what cost in the forget risk's rise, significant or not over seeds (paired, 95%).

Records from before the step changes were recorded state the same findings on the paper's quantity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.board.findings import ga_label
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

# hyper-parameters that make an entry a variant of the plain objective, with their plain values (None: any value,
# it comes with another one: the KL term's weight, GRU's moving average)
WRAPPERS: dict[str, object] = {"retain_loss": "none", "retain_weight": None, "rectify": "none", "gru_gamma": None,
                               "sam_rho": 0.0, "temperature": 1.0}


def has_geffect(board: LeaderboardSpec, table: pd.DataFrame) -> bool:
    return any(parse_key(c).evaluation == GEFFECT for c in board.columns) or bool(table.attrs.get("geffect"))


@dataclass(frozen=True)
class Quantity:
    """The change of a risk a finding is stated on: the realised first-order change (``realised``: positive = the
    risk rose) or the paper's cumulative G-effect (``cumulative``: negative = the risk rose)."""

    column: str  # the G-effect column name: realised | cumulative
    fact: str  # the facts' key: realised_change | cumulative

    @property
    def realised(self) -> bool:
        return self.column == "realised"

    def rise(self, facts: dict, data_set: str) -> float | None:
        """The risk's rise by this quantity (the cumulative G-effect's sign flipped)."""
        value = (facts.get(self.fact) or {}).get(data_set)
        return None if value is None else (value if self.realised else -value)

    def text(self) -> str:
        return "realised" if self.realised else "the paper's −Σ lr·e"


REALISED, PAPER = Quantity("realised", "realised_change"), Quantity("cumulative", "cumulative")


def geffect_paragraph(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "G-effect" paragraph per task: the agreement of both predictions with the measured change
    (``_agreement_sentence``), then GA's, NPO's and each wrapper's findings on the agreeing quantity. Empty without
    G-effect data."""
    data = table.attrs.get("geffect") or {}
    paragraphs = []
    for task_name, facts in data.items():
        agreement, quantity = _agreement_sentence(facts)
        parts = [agreement] if agreement else []
        parts += [text for text in (_ga_sentence(board, facts, quantity), _npo_sentence(board, facts, quantity),
                                    _variants_sentence(table, task_name, facts, quantity)) if text]
        if parts:
            prefix = f"On `{task_name}`: " if len(board.tasks) > 1 else ""
            paragraphs.append(f"**G-effect.** {prefix}" + " ".join(parts))
    return "\n\n".join(paragraphs)


def _agreement_sentence(facts: dict[str, dict]) -> tuple[str | None, Quantity | None]:
    """Per entry whose records have the step changes, the measured change of the forget risk against its realised
    first-order prediction and the paper's (−cumulative e_u), and which is closer for how many entries; with the
    agreeing quantity (realised when it is the closer for at least half the entries, else the paper's). (None, None)
    without such entries."""
    items, realised_closer, wrong_sign, errors = [], 0, [], {"realised": [], "paper": []}
    for label, f in facts.items():
        measured = (f.get("measured_change") or {}).get("forget")
        realised = (f.get("realised_change") or {}).get("forget")
        paper = f["cumulative"].get("forget")
        if measured is None or realised is None or paper is None:
            continue
        items.append(f"{label} {measured:+.4g} (realised {realised:+.4g}, paper {-paper:+.4g})")
        realised_closer += abs(realised - measured) < abs(-paper - measured)
        if measured != 0:
            errors["realised"].append(abs(realised - measured) / abs(measured))
            errors["paper"].append(abs(-paper - measured) / abs(measured))
            if -paper * measured < 0:
                wrong_sign.append(label)
    if not items:
        return None, None
    quantity = REALISED if 2 * realised_closer >= len(items) else PAPER
    text = ("Measured change of the forget risk between the recorded steps (positive: it rose) against the "
            "first-order change along the updates AdamW applied (realised) and the paper's −Σ lr·e_u: "
            + "; ".join(items) + f"; the realised one is the closer for {realised_closer} of {len(items)}")
    if errors["realised"]:
        text += (f" (median relative error {np.median(errors['realised']):.2f}, the paper's "
                 f"{np.median(errors['paper']):.2f})")
    if wrong_sign:
        text += f"; the paper's quantity has the wrong sign for {', '.join(wrong_sign)}"
    return (text + f", so the findings below are stated on {'it' if quantity.realised else 'the paper’s'} (with "
            "the measured change)."), quantity


def _ga_sentence(board: LeaderboardSpec, facts: dict[str, dict], quantity: Quantity | None) -> str | None:
    """GA's forget risk rise and whether its per-step change settles (the last two recorded steps); on the paper's
    quantity (old records): its cumulative e_u and |e_u|."""
    ga = ga_label(board)
    f = facts.get(ga) if ga else None
    if f is None or "forget" not in f["cumulative"]:
        return None
    if quantity is None or not quantity.realised or "realised_series" not in f:
        e_u = f["cumulative"]["forget"]
        direction = "rise" if e_u < 0 else "fall" if e_u > 0 else "not move"
        text = (f"{ga}'s cumulative e_u is {e_u:.4g}: under plain gradient descent with the same learning rates its "
                f"forget risk would, to first order, {direction} by {abs(e_u):.4g} (the paper's quantity, not the "
                f"change AdamW's steps made)")
        tail = f.get("e_u_tail")
        if tail and all(np.isfinite(tail["abs"])):
            (s0, s1), (a0, a1) = tail["steps"], tail["abs"]
            verdict = "shrinks, so e_u settles" if a1 < a0 else "does not shrink, so e_u does not settle"
            text += f"; |e_u| goes from {a0:.4g} at step {s0} to {a1:.4g} at step {s1}{_ratio(a0, a1)}: it {verdict}"
        return text + "."
    measured, realised = f["measured_change"]["forget"], f["realised_change"]["forget"]
    text = (f"{ga}'s forget risk rose by {measured:.4g} (measured; realised {realised:.4g}, the paper's quantity "
            f"{-f['cumulative']['forget']:.4g})")
    steps, per_step = f["realised_series"]["steps"], f["realised_series"]["forget"]
    if len(steps) >= 2:
        (s0, s1), (a0, a1) = steps[-2:], per_step[-2:]
        verdict = "it settles" if abs(a1) < abs(a0) else "it does not settle"
        text += (f"; its realised per-step rise goes from {a0:.3g} at step {s0} to {a1:.3g} at step {s1}"
                 f"{_ratio(a0, a1)}: {verdict}")
    return text + "."


def _npo_sentence(board: LeaderboardSpec, facts: dict[str, dict], quantity: Quantity | None) -> str | None:
    """NPO's mean weight w at the first and last recorded step, and (realised) its per-step forget change at the same
    steps: whether the shrinking weight shows in the step AdamW takes."""
    npo = _npo_label(board, facts)
    if not npo or "npo_weight" not in facts[npo]:
        return None
    weight = facts[npo]["npo_weight"]
    steps = weight.get("steps")
    where = f" (step {steps[0]} → {steps[1]})" if steps else " (first → last recorded step)"
    falls = weight["last"] < weight["first"]
    text = (f"{npo}'s mean weight w {'falls' if falls else 'does not fall'} from {weight['first']:.3f} to "
            f"{weight['last']:.3f}{where}")
    series = facts[npo].get("realised_series")
    if quantity is None or not quantity.realised or not series or len(series["steps"]) < 2:
        return text + (": it damps the ascent on items already forgotten." if falls else ".")
    r0, r1 = series["forget"][0], series["forget"][-1]
    shrinks = abs(r1) < abs(r0)
    return text + (f"; its realised per-step forget rise goes from {r0:.3g} to {r1:.3g}{_ratio(r0, r1)} over the "
                   f"same steps: AdamW's step {'shrinks' if shrinks else 'does not shrink'} with it.")


def _variants_sentence(table: pd.DataFrame, task: str, facts: dict[str, dict],
                       quantity: Quantity | None) -> str | None:
    """For each wrapper or regulariser entry with the board's plain entry of the same method: the retain risk's
    rise with it against without on the agreeing quantity, with the measured change, lower (a better retain effect)
    or higher when the paired seed draws of the quantity's column (``geffect/<quantity>/retain``) say so at 95%,
    else not significantly different (a point comparison, said so, when the board has no draws of the column); and
    the forget risk's rise with it against without, the same way."""
    q = quantity or PAPER
    items = []
    for label in facts:
        plain = _plain_of(facts, label)
        if plain is None:
            continue
        retain = _compare(table, task, facts, label, plain, q, "retain")
        forget = _compare(table, task, facts, label, plain, q, "forget")
        if retain is None:
            continue
        items.append(f"{label} vs {plain}: retain {retain}" + (f"; forget {forget}" if forget else ""))
    if not items:
        return None
    measured = " (the measured change between recorded steps in brackets)" if q.realised else ""
    return (f"Each wrapper or regulariser against its plain objective, the rise of the retain and forget risks on "
            f"{q.text()}{measured}, paired over seeds at 95% (a retain rise significantly lower is the retain effect "
            f"the wrapper promises): " + "; ".join(items) + ".")


def _compare(table: pd.DataFrame, task: str, facts: dict[str, dict], label: str, plain: str, q: Quantity,
             data_set: str) -> str | None:
    """"+a vs +b: lower / higher / not significantly different" for ``data_set``'s risk rise on ``q``, and on the
    realised quantity the measured change the same way: " [measured +c vs +d: ...]"."""
    mine, base = q.rise(facts[label], data_set), q.rise(facts[plain], data_set)
    if mine is None or base is None:
        return None
    text = f"{mine:+.3g} vs {base:+.3g}: {_verdict(table, task, q.column, data_set, label, plain, mine, base)}"
    if q.realised:
        m_mine = (facts[label].get("measured_change") or {}).get(data_set)
        m_base = (facts[plain].get("measured_change") or {}).get(data_set)
        if m_mine is not None and m_base is not None:
            verdict = _verdict(table, task, "measured", data_set, label, plain, m_mine, m_base)
            text += f" [measured {m_mine:+.3g} vs {m_base:+.3g}: {verdict}]"
    return text


def _verdict(table: pd.DataFrame, task: str, column: str, data_set: str, label: str, plain: str, mine: float,
             base: float) -> str:
    """Whether ``label``'s rise is lower or higher than ``plain``'s by the paired seed draws of
    ``geffect/<column>/<data_set>`` at 95% (rise: the column's values, or the cumulative G-effect negated), else
    not significantly different; the point comparison, said so, without draws."""
    draws = column_draws(table, task, f"{GEFFECT}/{column}/{data_set}")
    a, b = draws.get(label), draws.get(plain)
    if a is None or b is None:
        word = "lower" if mine < base else "higher" if mine > base else "equal"
        return f"{word} (point values; the board has no seed draws of this column)"
    rise_a, rise_b = (-a, -b) if column == "cumulative" else (a, b)
    if significantly(rise_b - rise_a):
        return "lower"
    if significantly(rise_a - rise_b):
        return "higher"
    return "not significantly different"


def _plain_of(facts: dict[str, dict], label: str) -> str | None:
    """The plain entry of a variant ``label``: the same registered method with the same hyper-parameters apart from
    ``WRAPPERS``, at their plain values where ``label`` sets them otherwise (the first such entry in board order);
    None when ``label`` is itself plain or has no plain entry."""
    mine = facts[label]
    varied = {k for k, plain_value in WRAPPERS.items()
              if plain_value is not None and mine["hparams"].get(k, plain_value) != plain_value}
    if not varied:
        return None
    rest = {k: v for k, v in mine["hparams"].items() if k not in WRAPPERS}
    for other, f in facts.items():
        if other == label or f["method"] != mine["method"]:
            continue
        if {k: v for k, v in f["hparams"].items() if k not in WRAPPERS} != rest:
            continue
        if all(f["hparams"].get(k, WRAPPERS[k]) == WRAPPERS[k] for k in varied):
            return other
    return None


def _npo_label(board: LeaderboardSpec, facts: dict[str, dict]) -> str | None:
    """The board's plain NPO row with G-effect data: labelled ``NPO``, else an ``npo`` entry without regulariser."""
    entries = [m.display for m in board.methods if m.method == "npo" and m.display in facts]
    exact = [d for d in entries if d.lower() == "npo"]
    plain = [d for d in entries if facts[d]["hparams"].get("retain_loss", "none") == "none"]
    pick = exact or plain or entries
    return pick[0] if pick else None


def _ratio(a0: float, a1: float) -> str:
    return f" (×{a1 / a0:.3g})" if a0 != 0 and np.isfinite(a1 / a0) else ""

