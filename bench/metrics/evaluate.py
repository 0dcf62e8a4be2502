"""Score one model on a task: engine passes per split, then every registered metric on their results."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bench.data.splits import SPLIT_ROLES
from bench.data.tasks import TaskData
from bench.data.tokenize import encode_qa
from bench.metrics.base import (
    ItemMetric,
    MetricValue,
    MissingInputError,
    ModelMetric,
    bootstrap_draws,
    bootstrap_model_replicates,
    draw_matrix,
    percentile_interval,
)
from bench.metrics.engine import QA_PRODUCTS, active_ledger, score_split, score_text_split
from bench.metrics.generation import words
from bench.metrics.gradnorm import per_item_grad_norms
from bench.metrics.privacy import membership_splits
from bench.registry import METRICS

# Holdout people are the membership-inference non-members: only their answers' likelihood is needed, so the engine
# skips their paraphrased / perturbed / rephrased sequences and their generation (a quarter of an evaluation). The
# same holds for MIA texts.
ROLE_PRODUCTS = {"holdout": ("answer",), "mia": ("answer",)}

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


_LEXICONS: dict[str, frozenset[str]] = {}


def task_lexicon(data: TaskData) -> frozenset[str]:
    """Every word (lower-cased, ``generation.words``) of every text of the task: its questions, answers,
    paraphrases, perturbed and "I don't know" answers and documents. The gibberish rate's vocabulary."""
    key = data.config.digest + data.split
    if key not in _LEXICONS:
        vocabulary: set[str] = set()
        for ds in (data.forget, data.retain, data.holdout, data.world_facts, data.forget_bio, data.retain_bio,
                   data.retain_eval, data.real_authors, data.mia_forget, data.mia_holdout):
            if ds is None:
                continue
            for column in ("question", "answer", "paraphrased_question", "paraphrased_answer", "idk_answer", "text"):
                if column in ds.column_names:
                    for text in ds[column]:
                        if text is not None:  # a raw document has no question
                            vocabulary.update(words(text))
            if "perturbed_answers" in ds.column_names:
                for texts in ds["perturbed_answers"]:
                    for text in texts:
                        vocabulary.update(words(text))
        _LEXICONS[key] = frozenset(vocabulary)
    return _LEXICONS[key]


def available_products(ds, role: str) -> tuple[str, ...]:
    """The engine products a QA split is scored with: its role's (``ROLE_PRODUCTS``), minus what the data cannot
    give. Without perturbed answers (MUSE's KnowMem QA, TOFU's training retain set) there is no truth ratio, so the
    paraphrased and perturbed sequences are skipped; without paraphrased questions (all equal to the question)
    the rephrased-prompt sequences are skipped. Metrics reading a skipped product do not apply to the split."""
    products = list(ROLE_PRODUCTS.get(role, QA_PRODUCTS))
    if "perturbed" in products and not any(len(p) for p in ds["perturbed_answers"]):
        products = [p for p in products if p not in ("perturbed", "paraphrase")]
    if "rephrased" in products and ("paraphrased_question" not in ds.column_names or
                                    ds["paraphrased_question"] == ds["question"]):
        products.remove("rephrased")
    return tuple(products)


def _score(model, tokenizer, data: TaskData, split: str, ds, lexicon: frozenset[str], gradnorm: bool):
    """The engine's pass over one split (``score_text_split`` for free text, ``score_split`` for QA with the
    split's ``available_products``), plus the answers' per-item gradient norms where ``gradnorm``."""
    cfg = data.config
    role = SPLIT_ROLES[split]
    if role == "text":
        scores = score_text_split(model, tokenizer, cfg.prompt_template, ds, split, cfg.eval.batch_size,
                                  cfg.eval.max_new_tokens_text, lexicon)
    else:
        scores = score_split(model, tokenizer, cfg.prompt_template, ds, split, role, cfg.eval.batch_size,
                             cfg.eval.max_new_tokens, lexicon, available_products(ds, role))
    if gradnorm:
        encoded = [encode_qa(tokenizer, cfg.prompt_template, q, a, add_eos=False)
                   for q, a in zip(ds["question"], ds["answer"])]
        scores.grad_norm = per_item_grad_norms(model, encoded, tokenizer.pad_token_id)
    return scores


def _item_values(scores, split: str, item_metrics: list[ItemMetric], metrics: dict[str, MetricValue]
                 ) -> dict[str, np.ndarray]:
    """Every applicable item metric's per-item values on one split's ``scores``; their aggregates go into
    ``metrics`` under ``"<split>/<metric>"`` (and the reads into the active ledger, if any)."""
    values: dict[str, np.ndarray] = {}
    for metric in item_metrics:
        if not metric.applies(scores):
            continue
        if (ledger := active_ledger()) is not None:
            ledger.reads.setdefault(split, []).append(metric.reads)
        values[metric.name] = metric.per_item(scores)
        metrics[f"{split}/{metric.name}"] = metric.aggregate(values[metric.name], split)
    return values


def shared_draws(per_item: PerItem, ids: Mapping[str, list[str]]) -> list[dict[str, np.ndarray]]:
    """The evaluation's shared bootstrap draws of items (``bootstrap_draws`` over its scored splits, in order):
    every metric of one evaluation, and every attack on the same model (``bench.attacks``), resamples the same
    items in replicate b. Empty when a split has fewer than 2 items."""
    sizes = {split: len(ids[split]) for split in per_item if per_item[split]}
    return bootstrap_draws(sizes) if sizes and min(sizes.values()) >= 2 else []


def _add_model_metrics(metrics: dict[str, MetricValue], model_metrics: list[ModelMetric], per_item: PerItem,
                       oracle: PerItem | None, ids: Mapping[str, list[str]]) -> None:
    """Add every computable model metric to ``metrics`` with its percentile interval over bootstrap draws of the
    items (one shared draw per split, ``bootstrap_draws``), then give every item metric its replicates on the
    same draws (the mean over each draw's items)."""
    values = {}
    for metric in model_metrics:
        try:
            values[metric.name] = metric.compute(per_item, oracle)
        except MissingInputError:  # e.g. GradNorm AUCs of an evaluation without gradnorm
            continue
    model_metrics = [m for m in model_metrics if m.name in values]
    draws = shared_draws(per_item, ids)
    replicates = bootstrap_model_replicates({m.name: m.compute for m in model_metrics}, per_item, oracle, draws,
                                            {m.name: m.compute_draws for m in model_metrics if m.compute_draws})
    for name, value in values.items():
        reps = replicates[name] if draws else None
        interval = percentile_interval(reps) if reps is not None else (None, None)
        metrics[name] = MetricValue(value, None, 1, "", *interval, replicates=reps)
    for key, metric in list(metrics.items()):  # the item metrics' means on the same draws
        if metric.replicates is None and draws and metric.split in draws[0]:
            values_ = per_item[metric.split][key.split("/", 1)[1]]
            reps = draw_matrix(np.asarray(values_), draws, metric.split).mean(axis=1).astype(np.float64)
            metrics[key] = dataclasses.replace(metric, replicates=reps)


def evaluate(model, tokenizer, data: TaskData, oracle: PerItem | _SelfReference | None,
             gradnorm: bool = False, text: bool = True) -> Evaluation:
    """All metrics of ``model`` on ``data.eval_splits()``. ``oracle`` is the retain oracle's per-item values;
    reference-relative metrics raise ``MissingReferenceError`` without it. ``gradnorm`` adds the per-item gradient
    norms of the membership splits' answers (``membership_splits``: forget and holdout, or the task's MIA texts;
    one backward pass per item: the GradNorm MIA), which the engine's forward passes cannot give; model metrics
    whose inputs were not computed are left out. ``text=False`` skips
    the free-text splits (their 80-token generations are the most expensive part; the calibrated model's
    evaluation leaves them out)."""
    item_metrics = [m for m in (METRICS.get(n) for n in METRICS.names()) if isinstance(m, ItemMetric)]
    model_metrics = [m for m in (METRICS.get(n) for n in METRICS.names()) if isinstance(m, ModelMetric)]
    metrics: dict[str, MetricValue] = {}
    per_item: dict[str, dict[str, np.ndarray]] = {}
    ids: dict[str, list[str]] = {}
    generations: dict[str, list[str]] = {}
    lexicon = task_lexicon(data)
    splits = data.eval_splits()
    gradnorm_splits = (membership_splits(splits) or ()) if gradnorm else ()
    for split, ds in splits.items():
        if SPLIT_ROLES[split] == "text" and not text:
            continue
        scores = _score(model, tokenizer, data, split, ds, lexicon, split in gradnorm_splits)
        ids[split] = scores.ids
        generations[split] = scores.generations if scores.generations is not None else [""] * len(scores.ids)
        per_item[split] = _item_values(scores, split, item_metrics, metrics)
    _add_model_metrics(metrics, model_metrics, per_item, per_item if oracle is SELF else oracle, ids)
    return Evaluation(metrics, per_item, ids, generations)
