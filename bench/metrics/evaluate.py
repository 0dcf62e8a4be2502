"""Score one model on a task: engine passes per split, then every registered metric on their results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bench.data.tasks import TaskData
from bench.metrics.base import ItemMetric, MetricValue, ModelMetric
from bench.metrics.engine import score_split
from bench.registry import METRICS

# The role tells item metrics how to score a split: "forget", "retain" and "holdout" are scored on the plain answer
# (Prob unnormalised, truth ratio max(0, 1 - R) except on forget); "utility" normalises Prob against the perturbed
# answers. Holdout people were never trained on: the non-members of the membership-inference metrics (privacy.py).
SPLIT_ROLES = {"forget": "forget", "retain": "retain", "world_facts": "utility", "holdout": "holdout"}

PerItem = Mapping[str, Mapping[str, np.ndarray]]


class _SelfReference:
    """Marker: the evaluated model is its own reference (the retain oracle's row: forget quality = 1)."""

    def __repr__(self) -> str:
        return "SELF"


SELF = _SelfReference()


@dataclass
class Evaluation:
    """Aggregates keyed ``"<split>/<metric>"`` (item metrics) or ``"<metric>"`` (model metrics), plus the per-item
    values and generations they came from (stored so every number can be recomputed)."""

    metrics: dict[str, MetricValue]
    per_item: dict[str, dict[str, np.ndarray]]
    ids: dict[str, list[str]]
    generations: dict[str, list[str]]

    def rows(self) -> list[dict]:
        """One JSON-able row per (split, item): its id, generation and every per-item metric value."""
        out = []
        for split, values in self.per_item.items():
            for i, item_id in enumerate(self.ids[split]):
                row = {"split": split, "id": item_id, "generation": self.generations[split][i]}
                row.update({name: float(v[i]) for name, v in values.items()})
                out.append(row)
        return out


def per_item_from_rows(rows: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of ``Evaluation.rows`` for the numeric columns (e.g. the oracle's stored truth ratios)."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["split"], []).append(row)
    out: dict[str, dict[str, np.ndarray]] = {}
    for split, items in grouped.items():
        keys = [k for k, v in items[0].items() if isinstance(v, float)]
        out[split] = {k: np.array([r[k] for r in items]) for k in keys}
    return out


def evaluate(model, tokenizer, data: TaskData, oracle: PerItem | _SelfReference | None) -> Evaluation:
    """All metrics of ``model`` on ``data.eval_splits()``. ``oracle`` is the retain oracle's per-item values;
    reference-relative metrics raise ``MissingReferenceError`` without it."""
    cfg = data.config
    item_metrics = [m for m in (METRICS.get(n) for n in METRICS.names()) if isinstance(m, ItemMetric)]
    model_metrics = [m for m in (METRICS.get(n) for n in METRICS.names()) if isinstance(m, ModelMetric)]
    metrics: dict[str, MetricValue] = {}
    per_item: dict[str, dict[str, np.ndarray]] = {}
    ids: dict[str, list[str]] = {}
    generations: dict[str, list[str]] = {}
    for split, ds in data.eval_splits().items():
        scores = score_split(model, tokenizer, cfg.prompt_template, ds, split, SPLIT_ROLES[split],
                             cfg.eval.batch_size, cfg.eval.max_new_tokens)
        ids[split], generations[split] = scores.ids, scores.generations
        per_item[split] = {}
        for metric in item_metrics:
            values = metric.per_item(scores)
            per_item[split][metric.name] = values
            metrics[f"{split}/{metric.name}"] = metric.aggregate(values, split)
    if oracle is SELF:
        oracle = per_item
    for metric in model_metrics:
        value = metric.compute(per_item, oracle)
        metrics[metric.name] = MetricValue(value, None, 1, "")
    return Evaluation(metrics, per_item, ids, generations)
