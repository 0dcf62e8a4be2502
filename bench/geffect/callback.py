"""Record the G-effect during unlearning: a training-loop callback every ``budget.callback_every`` steps (and once
before the first step), writing ``geffect.jsonl`` into the run folder and a summary into the record."""

from __future__ import annotations

import json
import math
import time

import torch

from bench.data.tasks import TaskData
from bench.data.tokenize import collate, encode_qa
from bench.geffect.compute import GEffect, block_groups, measure
from bench.methods.base import LossContext, Method, ReferenceModel, StepState, UnlearnBatch

DATA_SETS = ("forget", "retain", "holdout", "world_facts")


class GEffectRecorder:
    """Fixed measurement batches (the first ``n_items`` items of each set, so every step is measured on the same
    data): D_u = forget items (+ retain / IDK rows when the method needs them) for grad L_u; D in forget, retain,
    holdout, world facts for the risks; the forget items again for the per-instance PG-effect."""

    # Called at checkpoint steps t = 0, k, 2k, ... between backward and the optimizer update, so grad L_u is the
    # step's own accumulated gradient at theta_t (no extra pass) and D_u the step's sampled batch, as in the paper.
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
                                            batch(data.forget, "idk_answer", eos=True) if method.needs_idk else None)
        self.instance_ids = list(data.forget.select(range(min(n_items, len(data.forget))))["id"])
        self.measurements: list[GEffect] = []

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
        else:
            objective = UnlearnBatch(*(b.to(device) if b is not None else None for b in
                                       (self.objective_batch.forget, self.objective_batch.retain,
                                        self.objective_batch.idk)))
            result = measure(model, self.method, objective, LossContext(reference=self.reference, step=state.step),
                             risks, instance_batch=risks["forget"], step=state.step, lr=state.lr)
        result.diagnostics = dict(state.diagnostics)
        self.measurements.append(result)
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
        for i, m in enumerate(self.measurements):
            # the measurement at step t stands for the steps until the next one (every k; the last one: to the end)
            end = steps[i + 1] if i + 1 < len(steps) else min(m.step + self.every, self.total_steps or 1 << 62)
            span = max(end - m.step, 1)
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
        return out
