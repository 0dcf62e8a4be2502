"""Record the G-effect during unlearning: a training-loop callback every ``budget.callback_every`` steps (and once
before the first step), writing ``geffect.jsonl`` into the run folder and a summary into the record; the summary's
board columns (``geffect/...``) are a registered evaluation (``bench.registry.EVALUATIONS``)."""

from __future__ import annotations

import difflib
import json
import math
import time

import numpy as np
import torch

from bench.data.alternates import alternate_answers
from bench.data.tasks import TaskData
from bench.data.tokenize import collate, encode_qa
from bench.geffect.compute import GEffect, block_groups, eager_attention, measure, per_item_nll, step_changes
from bench.methods.base import LossContext, Method, ReferenceModel, StepState, UnlearnBatch
from bench.registry import EVALUATIONS
from bench.runtime.keys import EvaluationSpec, MetricKey, format_key
from bench.runtime.sections import MetricEntry

DATA_SETS = ("forget", "retain", "holdout", "world_facts")


class GEffectRecorder:
    """Fixed measurement batches (the first ``n_items`` items of each set, so every step is measured on the same
    data): D_u = forget items (+ retain / IDK rows when the method needs them) for grad L_u; D in forget, retain,
    holdout, world facts for the risks; the forget items again for the per-instance PG-effect."""

    # Called at checkpoint steps t = 0, k, 2k, ... between backward and the optimizer update, so grad L_u is the
    # step's own accumulated gradient at theta_t (no extra pass) and D_u the step's sampled batch, as in the paper;
    # ``step_taken`` is called right after that step's optimizer update, for the change the update made.
    before_update = True

    def __init__(self, method: Method, data: TaskData, tokenizer, reference: ReferenceModel | None,
                 n_items: int = 16, every: int = 1, total_steps: int | None = None) -> None:
        self.seconds = 0.0
        self.every, self.total_steps = max(every, 1), total_steps
        self.method, self.reference = method, reference
        template, pad = data.config.prompt_template, tokenizer.pad_token_id

        def batch(ds, column: str = "answer", eos: bool = False):
            rows = ds.select(range(min(n_items, len(ds))))
            encoded = [encode_qa(tokenizer, template, q, a, add_eos=eos) for q, a in zip(rows["question"],
                                                                                      rows[column])]
            return collate(encoded, pad, list(range(len(encoded))))

        sets = {"forget": data.forget, "retain": data.retain, "holdout": data.holdout,
                "world_facts": data.world_facts}
        self.risk_batches = {name: batch(ds) for name, ds in sets.items() if ds is not None and len(ds)}
        self.objective_batch = UnlearnBatch(batch(data.forget, eos=True),
                                            batch(data.retain, eos=True) if method.needs_retain else None,
                                            batch(data.forget, "idk_answer", eos=True) if method.needs_idk else None,
                                            batch(data.forget.add_column("alternate", alternate_answers(data)[
                                                :len(data.forget)]), "alternate", eos=True)
                                            if method.needs_alternate else None)
        self.instance_ids = list(data.forget.select(range(min(n_items, len(data.forget))))["id"])
        self.measurements: list[GEffect] = []
        self.final_risk: dict[str, float] = {}  # D -> R(D) after training (``finish``)

    def __call__(self, model: torch.nn.Module, state: StepState) -> None:
        """Measure at ``state.step``. Inside training the parameters' ``.grad`` hold the step's gradient of L_u;
        standalone (``ubench geffect``: no gradient yet) grad L_u is computed on the fixed forget measurement batch."""
        start = time.perf_counter()
        device = next(model.parameters()).device
        risks = {k: v.to(device) for k, v in self.risk_batches.items()}
        params = [p for p in model.parameters() if p.requires_grad]
        if any(p.grad is not None for p in params):
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            result = measure(model, None, None, None, risks, instance_batch=risks["forget"], step=state.step,
                             lr=state.lr, objective_grads=grads, loss=state.loss)
            # theta_t, for the update the optimizer is about to apply (one copy of the trainable parameters)
            self._before = [p.detach().clone() for p in params]
        else:
            objective = UnlearnBatch(*(b.to(device) if b is not None else None for b in
                                       (self.objective_batch.forget, self.objective_batch.retain,
                                        self.objective_batch.idk, self.objective_batch.alternate)))
            result = measure(model, self.method, objective, LossContext(reference=self.reference, step=state.step),
                             risks, instance_batch=risks["forget"], step=state.step, lr=state.lr)
        result.diagnostics = dict(state.diagnostics)
        self.measurements.append(result)
        self.seconds += time.perf_counter() - start

    def step_taken(self, model: torch.nn.Module, state: StepState) -> None:
        """After the optimizer update of the step last measured in training: record on that measurement the
        realised first-order change r(D) = grad R(D)(theta_t)^T (theta_{t+1} - theta_t) and the measured change
        R(D)(theta_{t+1}) - R(D)(theta_t) of every risk set (``bench.geffect.compute.step_changes``)."""
        before, self._before = getattr(self, "_before", None), None
        if before is None or not self.measurements or self.measurements[-1].step != state.step:
            return
        start = time.perf_counter()
        device = next(model.parameters()).device
        risks = {k: v.to(device) for k, v in self.risk_batches.items()}
        last = self.measurements[-1]
        change = step_changes(model, before, risks)
        last.realised_change, last.measured_change = change.realised, change.measured
        last.realised_blocks, last.risk = change.realised_blocks, change.risk
        self.seconds += time.perf_counter() - start

    def finish(self, model: torch.nn.Module) -> None:
        """After training: the risk R(D)(theta_end) of every set on the trained model (one forward each, eager
        attention, eval mode), the end point of the measured change between recorded steps."""
        start = time.perf_counter()
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        with torch.no_grad(), eager_attention(model):
            self.final_risk = {name: float(per_item_nll(model, batch.to(device)).double().mean())
                               for name, batch in self.risk_batches.items()}
        model.train(was_training)
        self.seconds += time.perf_counter() - start

    def jsonl(self) -> str:
        return "".join(json.dumps(m.to_dict(), sort_keys=True) + "\n" for m in self.measurements)

    def summary(self, n_layers: int) -> dict:
        """Cumulative e(D) = sum over measured steps t of lr_t * e_t(D) * (steps until the next measurement),
        i.e. the first-order change of R(D) the run caused, with the sign flipped (negative e:
        risk rose); per block and per block group for the forget and retain sets; the share of |cumulative e_u| in
        the most-affected group; the sign pattern (fraction of measurements with e_u < 0 and with e_r >= 0)."""
        if not self.measurements:
            return {}
        out: dict = {"steps": [m.step for m in self.measurements], "cumulative": {}, "cumulative_blocks": {},
                     "first": self.measurements[0].total, "last": self.measurements[-1].total}
        groups = block_groups(n_layers)
        steps = [m.step for m in self.measurements]
        # the measurement at step t stands for the steps until the next one (every k; the last one: to the end)
        for m, span in zip(self.measurements, self._spans(steps)):
            for d, value in m.total.items():
                out["cumulative"][d] = out["cumulative"].get(d, 0.0) + m.lr * value * span
            for d, blocks in m.blocks.items():
                acc = out["cumulative_blocks"].setdefault(d, {})
                for block, value in blocks.items():
                    acc[block] = acc.get(block, 0.0) + m.lr * value * span
        group_totals: dict[str, dict[str, float]] = {}
        for d, blocks in out["cumulative_blocks"].items():
            acc = group_totals.setdefault(d, {})
            for block, value in blocks.items():
                acc[groups.get(block, "middle")] = acc.get(groups.get(block, "middle"), 0.0) + value
        out["cumulative_groups"] = group_totals
        forget_groups = group_totals.get("forget", {})
        magnitude = sum(abs(v) for v in forget_groups.values())
        if magnitude > 0:
            top = max(forget_groups, key=lambda g: abs(forget_groups[g]))
            out["top_group"] = top
            out["top_group_share"] = abs(forget_groups[top]) / magnitude
        measured = self.measurements
        out["sign_pattern"] = {
            "forget_negative": sum(m.total.get("forget", 0.0) < 0 for m in measured) / len(measured),
            "retain_nonnegative": sum(m.total.get("retain", 0.0) >= 0 for m in measured) / len(measured)}
        weights = [m.diagnostics.get("npo_weight") for m in self.measurements if "npo_weight" in m.diagnostics]
        if weights:
            out["npo_weight"] = {"first": weights[0], "last": weights[-1]}
        out["finite"] = all(math.isfinite(v) for m in self.measurements for v in m.total.values())
        out.update(self._step_change_summary(steps, groups))
        return out

    def _spans(self, steps: list[int]) -> list[int]:
        """The number of training steps each recorded step stands for (until the next one; the last: to the end)."""
        ends = [*steps[1:], min(steps[-1] + self.every, self.total_steps or 1 << 62)]
        return [max(end - step, 1) for step, end in zip(steps, ends)]

    def _step_change_summary(self, steps: list[int], groups: dict[str, str]) -> dict:
        """The changes of every risk R(D) over the recorded steps t_0 < ... < t_K (each standing for span_k
        training steps, like the cumulative G-effect; positive: the risk rose), from the measurements that have the
        step's changes (``step_taken``):

        * ``realised_change`` = sum_k r_k(D) * span_k, the first-order change along the updates the optimizer applied
          (each recorded step's for its span); ``realised_groups``: the same per block group (D -> shallow / middle /
          deep), from the per-block values;
        * ``measured_change`` = sum_k (R(D)(theta_{t_k+1}) - R(D)(theta_{t_k})) = R(D)(theta_end) - R(D)(theta_{t_0}),
          the change of the risk measured between recorded steps (t_{K+1} = the end of training: ``finish``), the
          change every prediction is scored against;
        * ``one_step_change`` = sum_k m_k(D) * span_k, the one-step finite differences at the recorded steps scaled
          like the predictions (how far the first-order value is from its own step, apart from how well a step
          stands for its span);
        * ``agreement``: ``realised_error`` = |sum r span - measured| / |measured|, ``paper_error`` =
          |sum (-lr e) span - measured| / |measured| (the paper's prediction under gradient descent, same spans),
          and over the intervals (at least 3, both series varying) the Pearson correlations of r_k span_k and of
          -lr_k e_k span_k with the measured change of the interval (``realised_corr``, ``paper_corr``).

        Without the risks between recorded steps (records before they were kept, or no ``finish``) the measured
        change is the one-step sum (``one_step_change``; the only measurement there is). Empty without step
        changes."""
        rows = [(m, span) for m, span in zip(self.measurements, self._spans(steps)) if m.measured_change]
        if not rows:
            return {}
        final = self.final_risk
        realised: dict[str, float] = {}
        measured: dict[str, float] = {}
        one_step: dict[str, float] = {}
        agreement: dict[str, dict[str, float]] = {}
        between = len(rows) == len(self.measurements) and all(m.risk for m, _ in rows)
        for d in rows[0][0].measured_change:
            spans = [span for _, span in rows]
            r = [m.realised_change[d] * n for (m, _), n in zip(rows, spans)]
            paper = [-m.lr * m.total[d] * n for (m, _), n in zip(rows, spans)]
            one = [m.measured_change[d] * n for (m, _), n in zip(rows, spans)]
            if between and d in final:
                risks = [m.risk[d] for m, _ in rows] + [final[d]]
                intervals = [b - a for a, b in zip(risks, risks[1:])]
            else:
                intervals = one
            realised[d], measured[d], one_step[d] = sum(r), sum(intervals), sum(one)
            facts = {}
            if measured[d] != 0:
                facts = {"realised_error": abs(realised[d] - measured[d]) / abs(measured[d]),
                         "paper_error": abs(sum(paper) - measured[d]) / abs(measured[d])}
            for name, series in (("realised_corr", r), ("paper_corr", paper)):
                value = _correlation(series, intervals)
                if value is not None:
                    facts[name] = value
            agreement[d] = facts
        out = {"realised_change": realised, "measured_change": measured, "one_step_change": one_step,
               "agreement": agreement, **({"final_risk": dict(final)} if between and final else {})}
        by_group = _realised_by_group(rows, groups)
        return {**out, "realised_groups": by_group} if by_group else out


def _realised_by_group(rows: list[tuple[GEffect, int]], groups: dict[str, str]) -> dict[str, dict[str, float]]:
    """D -> block group -> sum over the recorded steps of the group's realised change r_t,block(D) * span_t."""
    by_group: dict[str, dict[str, float]] = {}
    for m, span in rows:
        for d, blocks in m.realised_blocks.items():
            acc = by_group.setdefault(d, {})
            for block, value in blocks.items():
                group = groups.get(block, "middle")
                acc[group] = acc.get(group, 0.0) + value * span
    return by_group


def _correlation(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation of ``a`` and ``b``; None with fewer than 3 points or a constant series."""
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


GEFFECT = "geffect"
# per data set: the paper's cumulative e(D); the realised first-order change of R(D) along the recorded optimizer
# steps and the change of R(D) measured between recorded steps (to the end of training); the relative errors of the
# realised and of the paper's prediction against the measured one
PER_SET = ("cumulative", "realised", "measured", "realised_error", "paper_error")
# the block group (shallow / middle / deep thirds) holding the largest share of the forget set's cumulative e (the
# paper's) or realised change, and that share
TOP_GROUP = ("top_group_share", "top_group", "realised_top_group_share", "realised_top_group")
COLUMNS = (*(f"{GEFFECT}/{name}/{s}" for name in PER_SET for s in DATA_SETS), *(f"{GEFFECT}/{n}" for n in TOP_GROUP))


def _direction(key: MetricKey) -> str:
    """Cumulative e(forget): lower is better (more negative: the forget risk rose more), the other sets higher;
    the realised and measured changes of R: forget higher (the forget risk rose), the other sets lower; the
    errors, the top group and its share have no direction of better."""
    if key.name == "cumulative":
        return "lower" if key.split == "forget" else "higher"
    if key.name in ("realised", "measured"):
        return "higher" if key.split == "forget" else "lower"
    return "none"


def _describe(key: MetricKey) -> str:
    d = key.split
    if key.name == "cumulative":
        note = "; negative: the forget risk rose (unlearning)" if d == "forget" else ""
        return f"cumulative G-effect on {d}: Σ lr·e({d})·steps over the recorded steps (arXiv 2502.19301): the " \
               f"first-order fall of R({d}) under plain gradient descent, not the change AdamW's steps made{note}"
    if key.name == "realised":
        return f"realised first-order change of R({d}): Σ ∇R({d})ᵀ(θ_t+1 − θ_t)·steps over the recorded steps, " \
               f"along the update the optimizer applied (positive: the risk rose)"
    if key.name == "measured":
        return f"measured change of R({d}) between the recorded steps: R({d})(θ_end) − R({d})(θ_0), the risk " \
               f"after training minus at the first recorded step " \
               f"(positive: the risk rose)"
    if key.name in ("realised_error", "paper_error"):
        which = "the realised first-order change" if key.name == "realised_error" else "the paper's −Σ lr·e·steps"
        return f"|{which} − the measured change| / |the measured change| of R({d})"
    if key.name == "top_group_share":
        return "share of |cumulative e(forget)| in the most-affected block group (shallow/middle/deep thirds)"
    if key.name == "realised_top_group_share":
        return ("share of the |realised change of R(forget)| in the block group where it is largest "
                "(shallow/middle/deep thirds)")
    if key.name == "realised_top_group":
        return "the block group with the largest |realised change of R(forget)|"
    return "the most-affected block group of the cumulative e(forget)"


def _key_problem(key: MetricKey, text: str) -> str | None:
    name = format_key(key.raw, name_first=True)
    if name in COLUMNS:
        return None
    close = difflib.get_close_matches(name, list(COLUMNS), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (G-effect columns: {', '.join(COLUMNS)})"
    return f"unknown column {text!r}{hint}"


def _read(record, key: MetricKey) -> MetricEntry | None:
    """The summary's number for ``key``: ``cumulative[<set>]``, ``realised_change[<set>]``,
    ``measured_change[<set>]``, ``agreement[<set>][realised_error | paper_error]`` or ``top_group_share``; None
    (blank) where the record lacks it (records written before the step changes were recorded)."""
    summary = record.geffect
    if summary is None:
        return None
    by_set = {"cumulative": summary.cumulative, "realised": summary.realised_change,
              "measured": summary.measured_change}
    if key.name == "top_group_share":
        value = summary.top_group_share
    elif key.name == "realised_top_group_share":
        top = realised_top_group(summary.realised_groups)
        value = None if top is None else top[1]
    elif key.name in by_set:
        value = (by_set[key.name] or {}).get(key.split)
    elif key.name in ("realised_error", "paper_error"):
        value = ((summary.agreement or {}).get(key.split) or {}).get(key.name)
    else:
        value = None
    return None if value is None else MetricEntry(value)


def _read_text(record, key: MetricKey) -> str | None:
    summary = record.geffect
    if summary is None:
        return None
    if key.name == "realised_top_group":
        top = realised_top_group(summary.realised_groups)
        return None if top is None else top[0]
    return None if summary.top_group is None else str(summary.top_group)


def realised_top_group(groups: dict[str, dict[str, float]] | None) -> tuple[str, float] | None:
    """(group, share): the block group g with the largest |r_g(forget)| of the realised change split by depth, and
    |r_g| / sum over groups of |r_group|; None without per-block values or when every group is 0."""
    forget = (groups or {}).get("forget") or {}
    magnitude = sum(abs(v) for v in forget.values())
    if magnitude <= 0:
        return None
    top = max(forget, key=lambda g: abs(forget[g]))
    return top, abs(forget[top]) / magnitude


EVALUATIONS.add(GEFFECT, EvaluationSpec(
    GEFFECT, better="cumulative: forget lower, others higher; realised, measured: forget higher, others lower; "
                    "errors, top group: none",
    keys="`geffect/cumulative/<set>`, `geffect/realised/<set>`, `geffect/measured/<set>`, "
         "`geffect/realised_error/<set>`, `geffect/paper_error/<set>`, `geffect/top_group_share`, "
         "`geffect/top_group`, `geffect/realised_top_group_share`, `geffect/realised_top_group`",
    description="G-effect of the unlearning objective, recorded during training every `budget.callback_every` "
                "steps (set: forget, retain, holdout, world_facts): `cumulative/<set>` is the paper's Σ lr·e(set)·"
                "steps over the recorded steps, the first-order fall of the risk per unit step of plain gradient "
                "descent (negative on forget: the forget risk rose), not the change AdamW's steps made; "
                "`realised/<set>` is the first-order change of the risk along the update the optimizer applied, "
                "Σ ∇Rᵀ(θ_t+1 − θ_t)·steps, and `measured/<set>` the change of the risk measured between the recorded "
                "steps, R(θ_end) − R(θ_0) "
                "(both positive: the risk rose); `realised_error/<set>` and `paper_error/<set>` are |realised − "
                "measured| / |measured| and |−cumulative − measured| / |measured|; `top_group` is the block group "
                "(shallow / middle / deep thirds) with the largest share of |cumulative e(forget)| and "
                "`top_group_share` that share; `realised_top_group` and `realised_top_group_share` the same for the "
                "realised change of the forget risk, split by block (∇_b R(θ_t)ᵀ(θ_t+1 − θ_t)_b). Blank on "
                "reference rows, and the step changes blank on records "
                "written before they were recorded.",
    source="Wang et al. 2025, Rethinking LLM Unlearning Objectives: A Gradient Perspective (arXiv 2502.19301)",
    direction=_direction, describe=_describe, problem=_key_problem, read=_read, read_text=_read_text,
    name_first=True, number_format=lambda key: ".3f" if key.name.endswith("top_group_share") else ".3g",
    text_names=frozenset({"top_group", "realised_top_group"}), known=COLUMNS, run_only=True))
