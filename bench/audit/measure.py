"""The audit's measurements: every audited metric of every pool model, plain and under every attack that
transforms the model or its prompt (``Attack.attacked``) plus the relearning attack, one engine evaluation each."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from bench.attacks.base import Attack, AttackContext
from bench.audit.pools import PoolModel
from bench.data.tasks import TaskData
from bench.metrics.base import ItemMetric
from bench.metrics.evaluate import SELF, evaluate
from bench.metrics.robustness import relearned_copy
from bench.models.tiny import get_model
from bench.registry import ATTACKS, METRICS

RELEARN = "relearn"
PLAIN = "none"
# model metrics that measure forgetting (model_utility and the like measure something else)
FORGET_MODEL_METRICS = ("forget_quality", "mia_auc_", "privleak_")


def audited_metrics(keys: Sequence[str]) -> dict[str, int]:
    """``{key: sign}`` of the evaluation keys the audit scores: every forget-split item metric and every model
    metric of forgetting, with sign +1 where a higher value means more forget knowledge and -1 where lower does
    (from each metric's declared direction on the forget set: ``forget_direction`` lower = knowledge is high;
    forget quality and PrivLeak are highest / closest to 0 for the oracle; a membership AUC above 0.5 detects
    members)."""
    out = {}
    for key in sorted(keys):
        split, _, name = key.rpartition("/")
        if split == "forget":
            metric = METRICS.get(name)
            if isinstance(metric, ItemMetric):
                out[key] = 1 if metric.forget_direction == "lower" else -1
        elif not split and key.startswith(FORGET_MODEL_METRICS):
            out[key] = 1 if key.startswith("mia_auc_") else -1
    return out


def audit_attacks() -> list[str]:
    """The attacks every metric can be evaluated under: those with ``attacked`` (weights or prompt), and the
    relearning attack (the model fine-tuned on its slice of the forget set)."""
    names = [n for n in ATTACKS.names() if ATTACKS.get(n).attacked is not Attack.attacked]
    return [*names, RELEARN]


def _values(metrics: dict, keys: dict[str, int]) -> dict[str, float]:
    return {k: float(f"{metrics[k].value:.6g}") if k in metrics and metrics[k].value is not None else float("nan")
            for k in keys}  # 6 significant digits: what the record keeps and its content hash covers


def _under_attack(name: str, model, ctx: AttackContext, data: TaskData):
    """(attacked model, task data with the attack's prompt template)."""
    if name == RELEARN:
        return relearned_copy(model, ctx.tokenizer, data), data
    attacked, template = ATTACKS.get(name)().attacked(model, ctx)
    if template != data.config.prompt_template:
        data = dataclasses.replace(data, config=dataclasses.replace(data.config, prompt_template=template))
    return attacked, data


def oracle_items(data: TaskData, tokenizer, seed: int):
    """The replicate's oracle per-item values (forget quality and PrivLeak are measured against them)."""
    oracle = get_model(data, "oracle", replicate=seed).load().eval()
    return evaluate(oracle, tokenizer, data, SELF, text=False).per_item


def measure(models: Sequence[PoolModel], data: TaskData, tokenizer, attacks: Sequence[str], log=print
            ) -> tuple[list[dict], dict[str, int]]:
    """One row per (model, attack): pool, seed, how, attack (``none`` = plain) and every audited metric
    (``audited_metrics`` of the first evaluation's keys, returned with the rows). Pools ``knows`` and ``never`` are
    measured plain; ``unlearned`` models and the plain oracles (``never`` pool, ``how`` = oracle: each attack's
    never-learned baseline) under every attack too. Each replicate's oracle is evaluated once for all its models."""
    oracles = {seed: oracle_items(data, tokenizer, seed) for seed in sorted({m.seed for m in models})}
    rows, keys = [], {}
    for i, m in enumerate(models):
        ctx = AttackContext(tokenizer, data)
        attacked = attacks if m.pool == "unlearned" or m.how == "oracle" else ()
        for attack in (PLAIN, *attacked):
            model, task = (m.model, data) if attack == PLAIN else _under_attack(attack, m.model, ctx, data)
            metrics = evaluate(model, tokenizer, task, oracles[m.seed], text=False).metrics
            keys = keys or audited_metrics(metrics)
            rows.append({"pool": m.pool, "seed": m.seed, "how": m.how, "attack": attack, **_values(metrics, keys)})
        log(f"[{i + 1}/{len(models)}] {m.name}: {1 + len(attacked)} evaluation(s)")
    return rows, keys


def table(rows: list[dict], pool: str | None = None, attack: str = PLAIN) -> dict[tuple, dict]:
    """``{(pool, seed, how): row}`` of the rows of ``attack`` (and ``pool``)."""
    return {(r["pool"], r["seed"], r["how"]): r for r in rows
            if r["attack"] == attack and (pool is None or r["pool"] == pool)}


def column(rows: dict[tuple, dict], key: str) -> np.ndarray:
    return np.array([rows[k][key] for k in sorted(rows)], dtype=float)
