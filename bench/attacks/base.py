"""The attack interface and the harness that turns an attack's per-item values into record metrics.

An attack returns, for each split it scores (the forget set and the retain set), per-item values of the metrics
it measures, on the same items and in the same order as the plain evaluation (``bench.metrics.evaluate``), so
that its item draws are the evaluation's shared draws and the board's hierarchical bootstrap over seeds and items
resamples plain and attacked values together. ``attack_metrics`` stores each as ``<split>/<metric>@<attack>``:
mean, n, 95% percentile interval and ``boot`` (the mean on each shared draw), and adds the worst case

    forget/<m>@worst = max(forget/<m>, max over attacks a of forget/<m>@a)     (m = es, prob)

per draw as well as for the value (the most knowledge any attack brings back, no attack included: an attack that
hurts recall never makes a model look better).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from bench.data.tasks import TaskData
from bench.data.tokenize import Encoded, encode_qa
from bench.metrics.base import draw_matrix, percentile_interval
from bench.metrics.engine import teacher_forced
from bench.metrics.memorization import extraction_strength, probability
from bench.registry import ATTACKS
from bench.runtime.keys import ATTACK_MARK
from bench.runtime.sections import MetricEntry, stored_boot

ATTACKED_SPLITS = ("forget", "retain")  # what an attack scores: does the forget set come back, and at what cost
WORST = "worst"
WORST_METRICS = ("es", "prob")
CHEAP, EXPENSIVE = "cheap", "expensive"

PerItem = dict[str, dict[str, np.ndarray]]  # split -> metric -> one value per item


@dataclass
class AttackContext:
    """What an attack may use besides the attacked model: the tokenizer, the task's data, and loaders of the
    reference models (the target before unlearning, the retain oracle) for the attacks that compare with them."""

    tokenizer: Any
    data: TaskData
    load_target: Callable[[], torch.nn.Module] | None = None
    load_oracle: Callable[[], torch.nn.Module] | None = None
    _models: dict[str, torch.nn.Module] = field(default_factory=dict)

    def reference(self, kind: str) -> torch.nn.Module:
        """The reference model ``kind`` (target / oracle), loaded once per context."""
        if kind not in self._models:
            loader = self.load_target if kind == "target" else self.load_oracle
            if loader is None:
                raise ValueError(f"this attack needs the {kind} model, and none was given")
            self._models[kind] = loader().eval()
        return self._models[kind]

    @property
    def batch_size(self) -> int:
        return self.data.config.eval.batch_size

    def qa(self, split: str) -> tuple[list[str], list[str]]:
        """Questions and answers of ``split`` as the plain evaluation scores them (its fixed, seeded subset)."""
        ds = self.data.eval_splits()[split]
        return list(ds["question"]), list(ds["answer"])


class Attack:
    """One attack. ``name`` keys its numbers (``forget/es@<name>``); ``version`` is part of every id that runs it;
    ``cost`` is ``cheap`` (a few teacher-forced passes: run on the default board) or ``expensive`` (training,
    sampling or one pass per layer: the ``full`` board and the audit); ``paper``/``summary`` go into
    ``docs/metrics.md``. ``scores`` returns per-item values (``PerItem``) of the ``ATTACKED_SPLITS``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    cost: ClassVar[str] = CHEAP
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ("es", "prob")
    # direction of better of a number that is no registered metric (``uds``: higher, 1 = erased as deep as the
    # oracle lacks it); registered metrics keep their own
    directions: ClassVar[dict[str, str]] = {}

    def scores(self, model: torch.nn.Module, ctx: AttackContext) -> PerItem:
        raise NotImplementedError

    def attacked(self, model: torch.nn.Module, ctx: AttackContext) -> tuple[torch.nn.Module, str] | None:
        """The attacked model and the prompt template to evaluate it with, where the attack is a transformation of
        the model or of the prompt that every metric can be evaluated under (the metric audit, ``bench.audit``);
        None for a probe that only produces its own scores (logit lens, patching, sampling, per-item prompts)."""
        return None


def es_and_prob(model: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int, batch_size: int
                ) -> dict[str, np.ndarray]:
    """Per-item extraction strength and TOFU Prob of the answers of ``encoded`` (one teacher-forced pass)."""
    scores = teacher_forced(model, encoded, pad_id, batch_size, moments=False)
    return {"es": np.array([extraction_strength(s.argmax_match) for s in scores]),
            "prob": np.array([probability(s.logprobs) for s in scores])}


def prompted_scores(model: torch.nn.Module, ctx: AttackContext, template: Callable[[str], str]) -> PerItem:
    """ES and Prob of the forget and retain answers with each split's prompt built by ``template(split)`` (a
    ``str.format`` template with ``{question}``): the prompt attacks' one pass per split."""
    out: PerItem = {}
    for split in ATTACKED_SPLITS:
        questions, answers = ctx.qa(split)
        encoded = [encode_qa(ctx.tokenizer, template(split), q, a, add_eos=False) for q, a in zip(questions, answers)]
        out[split] = es_and_prob(model, encoded, ctx.tokenizer.pad_token_id, ctx.batch_size)
    return out


def plain_scores(model: torch.nn.Module, ctx: AttackContext) -> PerItem:
    """ES and Prob under the task's own prompt (what an attack that changes the weights is scored with)."""
    return prompted_scores(model, ctx, lambda split: ctx.data.config.prompt_template)


def _boot(values: np.ndarray, draws: list[dict[str, np.ndarray]] | None, split: str) -> np.ndarray | None:
    if not draws:
        return None
    return draw_matrix(values, draws, split).mean(axis=1)


def _entry(value: float, n: int, split: str, boot: np.ndarray | None) -> MetricEntry:
    low, high = percentile_interval(boot) if boot is not None else (None, None)
    return MetricEntry(float(value), None, n, split, low, high, stored_boot(boot))


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def attack_metrics(model: torch.nn.Module, ctx: AttackContext, names: Sequence[str],
                   plain: Mapping[str, MetricEntry], draws: list[dict[str, np.ndarray]] | None,
                   timings: dict[str, float] | None = None) -> dict[str, MetricEntry]:
    """Run the attacks ``names`` on ``model`` and return their record metrics ``<split>/<metric>@<attack>`` and the
    worst case ``forget/<m>@worst`` (module docstring). ``plain`` holds the model's attack-free metrics (for the
    worst case: ``forget/es``, ``forget/prob``, with their ``boot`` on the same ``draws``, the evaluation's shared
    item draws). The model is left unchanged; its train/eval mode is restored."""
    out: dict[str, MetricEntry] = {}
    worst_values = {m: [] for m in WORST_METRICS}
    worst_boots = {m: [] for m in WORST_METRICS}
    for m in WORST_METRICS:
        entry = plain.get(f"forget/{m}")
        if entry is not None and entry.value is not None:
            worst_values[m].append(float(entry.value))
            if entry.boot is not None:
                worst_boots[m].append(np.array([np.nan if b is None else b for b in entry.boot], dtype=float))
    was_training = model.training
    model.eval()
    try:
        for name in names:
            start = time.perf_counter()
            per_item = ATTACKS.get(name)().scores(model, ctx)
            if timings is not None:
                timings[f"attack_{name}_seconds"] = round(time.perf_counter() - start, 3)
            for split, values in per_item.items():
                for metric, items in values.items():
                    items = np.asarray(items, dtype=float)
                    boot = _boot(items, draws, split) if np.isfinite(items).all() else None
                    value = _nanmean(items)
                    out[f"{split}/{metric}{ATTACK_MARK}{name}"] = _entry(value, int(np.isfinite(items).sum()),
                                                                         split, boot)
                    if split == "forget" and metric in WORST_METRICS:
                        worst_values[metric].append(value)
                        if boot is not None:
                            worst_boots[metric].append(boot)
    finally:
        model.train(was_training)
    for m in WORST_METRICS:
        if len(worst_values[m]) > 1:
            complete = len(worst_boots[m]) == len(worst_values[m])
            boot = np.max(np.stack(worst_boots[m]), axis=0) if complete else None
            n = plain[f"forget/{m}"].n if f"forget/{m}" in plain else None
            out[f"forget/{m}{ATTACK_MARK}{WORST}"] = _entry(max(worst_values[m]), n or 0, "forget", boot)
    return out


def attack_versions(names: Sequence[str]) -> dict[str, str]:
    """``{name: version}`` of the attacks ``names`` (sorted): what a run or reference id records of them."""
    return {name: str(ATTACKS.get(name).version) for name in sorted(set(names))}


def attack_names(cost: str | None = None) -> list[str]:
    """Every registered attack (of ``cost``, if given), by name."""
    return [n for n in ATTACKS.names() if cost is None or ATTACKS.get(n).cost == cost]
