"""The audit's model pools, built on the task's shipped replicate models.

- **knows**: models that hold the forget knowledge: each replicate's target, and the target after each
  ``VARIANTS`` transformation (a few steps of ordinary fine-tuning on retain pairs, at several learning rates and
  seeds, or a small Gaussian perturbation of the weights);
- **never**: models that never learned it: each replicate's retain oracle, under exactly the same
  transformations.

The two pools differ only in whether their training ever saw the forget set: every other source of variation
(replicate seed, transformation, its strength) is applied to both alike, so a metric that separates them
separates knowledge, not a side effect of how the models were made. That is the construction of open-unlearning's
faithfulness test (arXiv 2506.12618: models trained with and without the forget data), on this task's own models.

- **unlearned**: the target of each replicate unlearned by each of ``UNLEARNING_METHODS`` under a budget tier (no
  calibration): the models whose metric values an attack is meant to move.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.audit.design import FT_BATCH, FT_ITEMS, FT_STEPS, UNLEARNING_METHODS, VARIANTS
from bench.data.sampling import EpochSampler
from bench.data.tasks import TaskData
from bench.data.tokenize import encode_qa
from bench.methods.base import ReferenceModel, make_method, sequence_nll
from bench.models.tiny import get_model
from bench.run.execute import encoded_pairs
from bench.run.train import unlearn
from bench.specs.run import Budget


@dataclass
class PoolModel:
    """One audited model: its pool (knows / never / unlearned), replicate seed, how it was made, and the model."""

    pool: str
    seed: int
    how: str
    model: torch.nn.Module

    @property
    def name(self) -> str:
        return f"{self.pool}/s{self.seed}/{self.how}"


def _finetuned(model: torch.nn.Module, tokenizer, data: TaskData, lr: float, seed: int) -> torch.nn.Module:
    """``FT_STEPS`` AdamW steps of NLL on ``FT_ITEMS`` seeded retain training pairs (a forked, seeded RNG)."""
    pairs = data.unlearning_pairs("retain")
    rng = np.random.default_rng(seed)
    chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), size=min(FT_ITEMS, len(pairs)), replace=False))]
    train = [encode_qa(tokenizer, data.config.prompt_template, q, a, add_eos=True) for q, a, _ in chosen]
    out = copy.deepcopy(model).train()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(out.parameters(), lr=lr, weight_decay=0.0)
        sampler = EpochSampler(train, min(FT_BATCH, len(train)), tokenizer.pad_token_id,
                               torch.Generator().manual_seed(seed))
        for _ in range(FT_STEPS):
            sequence_nll(out, sampler.next()).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return out.eval()


def _noised(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """Every tensor plus Gaussian noise of std ``scale`` x its own std (a seeded generator)."""
    out = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.std())
    return out.eval()


def variant(model: torch.nn.Module, tokenizer, data: TaskData, kind: str, strength: float, seed: int):
    return _finetuned(model, tokenizer, data, strength, seed) if kind == "finetune" else _noised(model, strength, seed)


def knowledge_pools(data: TaskData, tokenizer, seeds: Sequence[int],
                    variants: Sequence[tuple[str, str, float, int]] = VARIANTS) -> list[PoolModel]:
    """The ``knows`` (targets) and ``never`` (retain oracles) pools: each replicate's model and its variants."""
    out = []
    for seed in seeds:
        for pool, kind in (("knows", "target"), ("never", "oracle")):
            base = get_model(data, kind, replicate=seed).load().eval()
            out.append(PoolModel(pool, seed, kind, base))
            out += [PoolModel(pool, seed, f"{kind}+{name}", variant(base, tokenizer, data, k, s, vseed))
                    for name, k, s, vseed in variants]
    return out


def unlearned_pool(data: TaskData, tokenizer, seeds: Sequence[int], budget: Budget,
                   methods: Sequence[str] = UNLEARNING_METHODS) -> list[PoolModel]:
    """Each replicate's target unlearned by each method (default hyper-parameters) under ``budget``."""
    out = []
    for seed in seeds:
        target = get_model(data, "target", replicate=seed)
        for name in methods:
            method = make_method(name, {})
            forget, retain, idk = encoded_pairs(data, tokenizer, method)
            model = target.load()
            reference = ReferenceModel(target.load()) if method.needs_reference else None
            unlearn(model, method, forget, retain, budget, seed, tokenizer.pad_token_id, reference, idk=idk)
            out.append(PoolModel("unlearned", seed, name, model.eval()))
    return out
