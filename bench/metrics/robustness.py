"""Robustness of forgetting: the relearning attack (Hu et al. 2024, "Jogging the memory of unlearned LLMs through
targeted relearning attacks", arXiv 2406.13356; metrics under attacks as in Wang et al. 2024, arXiv 2406.09179).

An unlearning method that truly removed the forget data leaves nothing to recover; one that only *suppressed* it
(e.g. gradient ascent pushing the answers' likelihood down) gets much of the forget set back after a little
fine-tuning on a small part of it. Protocol:

1. split the forget items (by id, seeded) into an attack *slice* of round(f * n) items (at least 1, at most n - 1)
   and the *rest*;
2. fine-tune a deep copy of the model on the slice: ``steps`` AdamW steps (lr, weight decay 0, no clipping, no
   schedule) on batches of min(``batch_size``, slice size) slice items, cycling through the slice in a seeded
   order (a fresh permutation every pass), minimising the mean over the batch of
   NLL(a + EOS) = -(1/T) sum_t log p(a_t | q, a_<t) (answer tokens and EOS, as the target was trained);
3. score the *rest* (never seen by the attack) before and after, teacher-forced, answer tokens without EOS:
   ES = mean over items of 1 - k_min / T (extraction strength, ``bench.metrics.memorization.extraction_strength``)
   and Prob = mean over items of exp(-NLL(a)) (TOFU Prob).

Reading it: the retain oracle (never trained on the forget people) gives the "relearned from scratch" baseline --
what the slice alone teaches about the rest. An unlearned model whose ES on the rest after relearning is far above
the oracle's still holds the forget knowledge. ES/Prob *before* are the attack-free values on the same items.

Defaults (f = 0.25, 20 steps, lr 5e-4, batch 8), measured on synthetic-mini forget10 (20 forget items: slice 5,
rest 15), ES on the rest before -> after, mean over seeds 0-4 (Prob in brackets):

* target 1.00 -> 0.97 (0.99 -> 0.98); retain oracle 0.18 -> 0.20 (0.02 -> 0.07): the slice alone teaches next to
  nothing about the other attributes of the same people;
* gradient ascent, 20 AdamW steps at lr 5e-4: 0.11 -> 0.26 (0.02 -> 0.38); the same with a retain NLL term (GD):
  0.12 -> 0.27 (0.04 -> 0.42); gradient ascent, 10 steps (half unlearned): 0.49 -> 0.58 (0.56 -> 0.77).

lr 1e-3 for 10 steps recovers as much but costs the target more (1.00 -> 0.94: fitting five items hard disturbs
other memorised answers); lr 3e-3 damages every model (target 1.00 -> 0.53, seed 0) and measures that damage instead of
recovery; fewer steps or lower lr recover less. ES moves in steps of 1/n_rest per flipped item and is strict (one
wrong token near the end of the answer puts an item near 0), so Prob shows the recovery more smoothly.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.data.sampling import EpochSampler
from bench.data.tasks import TaskData
from bench.data.tokenize import encode_qa
from bench.methods.base import sequence_nll
from bench.metrics.engine import teacher_forced
from bench.metrics.memorization import extraction_strength, probability
from bench.registry import EVALUATIONS
from bench.runtime.keys import EvaluationSpec, MetricKey
from bench.runtime.sections import MetricEntry


@dataclass(frozen=True)
class RelearnSpec:
    """The attack: relearn on ``fraction`` of the forget items for ``steps`` AdamW steps of size ``lr`` on batches of
    ``batch_size`` slice items; ``seed`` fixes the split and the batch order."""

    fraction: float = 0.25
    steps: int = 20
    lr: float = 5e-4
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0 < self.fraction < 1:
            raise ValueError(f"fraction: must be in (0, 1), got {self.fraction!r}")
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) \
                or not self.lr > 0:
            raise ValueError(f"lr: must be a finite number > 0, got {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: must be an integer >= 0, got {self.seed!r}")


def relearn_split(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(slice positions, rest positions), each ascending, disjoint and together covering ``range(len(ids))``.

    The slice is the k = min(max(round(fraction * n), 1), n - 1) items with the smallest sha256(f"{seed}:{id}"): it
    depends on the ids and the seed only, not on their order or on any global random state. Needs n >= 2 distinct
    ids.
    """
    n = len(ids)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction: must be in (0, 1), got {fraction!r}")
    if n < 2:
        raise ValueError(f"ids: need at least 2 items to split into a slice and a rest, got {n}")
    if len(set(ids)) != n:
        raise ValueError("ids: must be distinct")
    k = min(max(round(fraction * n), 1), n - 1)
    keys = [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in ids]
    chosen = set(sorted(range(n), key=keys.__getitem__)[:k])
    return sorted(chosen), [i for i in range(n) if i not in chosen]


def _rest_scores(model: torch.nn.Module, encoded, pad_id: int, batch_size: int) -> tuple[float, float]:
    scores = teacher_forced(model, encoded, pad_id, batch_size, moments=False)
    es = float(np.mean([extraction_strength(s.argmax_match) for s in scores]))
    prob = float(np.mean([probability(s.logprobs) for s in scores]))
    return es, prob


def relearned_copy(model: torch.nn.Module, tokenizer, data: TaskData, spec: RelearnSpec = RelearnSpec()
                   ) -> torch.nn.Module:
    """A deep copy of ``model`` fine-tuned on the relearning slice of ``data.forget`` (``relearn_split``) for
    ``spec.steps`` AdamW steps, every parameter trainable; in eval mode. The global torch RNG is seeded with
    ``spec.seed`` inside a forked RNG state, so the caller's random state is untouched."""
    forget, template, pad_id = data.forget, data.config.prompt_template, tokenizer.pad_token_id
    slice_idx, _ = relearn_split(list(forget["id"]), spec.fraction, spec.seed)
    questions, answers = forget["question"], forget["answer"]
    train = [encode_qa(tokenizer, template, questions[i], answers[i], add_eos=True) for i in slice_idx]
    attacked = copy.deepcopy(model)
    device = next(attacked.parameters()).device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(spec.seed)
        params = list(attacked.parameters())
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
        sampler = EpochSampler(train, spec.batch_size if spec.batch_size < len(train) else len(train), pad_id,
                               torch.Generator().manual_seed(spec.seed))
        attacked.train()
        for _ in range(spec.steps):
            batch = sampler.next().to(device)
            loss = sequence_nll(attacked, batch).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return attacked.eval()


def relearn_attack(model: torch.nn.Module, tokenizer, data: TaskData,
                   spec: RelearnSpec = RelearnSpec()) -> dict[str, float]:
    """Relearn on a slice of ``data.forget`` and score the rest (protocol in the module docstring).

    ``model`` is never modified (its train/eval mode is restored): the attack fine-tunes a deep copy
    (``relearned_copy``). Deterministic on CPU for a given ``spec``. Returns ``relearn/forget/es`` and
    ``relearn/forget/prob`` (mean ES and Prob on the rest after relearning), ``relearn/forget/es_before`` and
    ``relearn/forget/prob_before`` (the same before), ``relearn/n_slice`` and ``relearn/n_rest``.
    """
    forget, template, pad_id = data.forget, data.config.prompt_template, tokenizer.pad_token_id
    slice_idx, rest_idx = relearn_split(list(forget["id"]), spec.fraction, spec.seed)
    questions, answers = forget["question"], forget["answer"]
    rest = [encode_qa(tokenizer, template, questions[i], answers[i], add_eos=False) for i in rest_idx]
    eval_batch = data.config.eval.batch_size
    was_training = model.training
    model.eval()
    try:
        es_before, prob_before = _rest_scores(model, rest, pad_id, eval_batch)
    finally:
        model.train(was_training)
    attacked = relearned_copy(model, tokenizer, data, spec)
    es_after, prob_after = _rest_scores(attacked, rest, pad_id, eval_batch)
    del attacked
    return {"relearn/forget/es": es_after, "relearn/forget/prob": prob_after,
            "relearn/forget/es_before": es_before, "relearn/forget/prob_before": prob_before,
            "relearn/n_slice": float(len(slice_idx)), "relearn/n_rest": float(len(rest_idx))}


def _describe(key: MetricKey) -> str:
    """One line: what the relearning column ``key`` (``relearn/forget/es``, ``relearn/forget/es_before``) measures."""
    if key.name.endswith("_before"):
        return f"relearning attack: {key.split} {key.name.removesuffix('_before')} on the held-back forget items " \
               "before the attack"
    return f"relearning attack: {key.split} {key.name} on the held-back forget items after fine-tuning on a slice " \
           "of the forget set"


def _key_problem(key: MetricKey, text: str) -> str | None:
    """A key ``relearn/<split>/<metric>`` (``relearn/n_slice`` and ``relearn/n_rest`` are bookkeeping)."""
    if key.split and "/" not in key.split:
        return None
    return f"unknown column {text!r}; write relearn/forget/es or relearn/forget/prob"


def relearn_metrics(model, tokenizer, data: TaskData) -> dict[str, MetricEntry]:
    """The relearning attack (``bench.metrics.robustness``, default ``RelearnSpec``) as record metrics
    ``relearn/...``."""
    attack = relearn_attack(model, tokenizer, data)
    return {key: MetricEntry(value, None, 1, "relearn") for key, value in attack.items()}


EVALUATIONS.add("relearn", EvaluationSpec(
    "relearn", better="lower", keys="`relearn/forget/es`, `relearn/forget/prob`",
    description="relearning attack: fine-tune a copy of the model on a seeded slice of the forget items, then the "
                "extraction strength / Prob of the REST of the forget items (`relearn/forget/es_before` is the same "
                "before the attack). Compare with the retain oracle's row: a model that suppressed rather than "
                "removed the knowledge recovers far more than one that never learned it.",
    source="Hu et al. 2024 (arXiv 2406.13356); robustness checks of arXiv 2406.09179",
    direction=lambda key: "lower", describe=_describe, problem=_key_problem,
    compute=relearn_metrics))
