"""Benign fine-tuning attack: a few steps of ordinary fine-tuning on unrelated data.

Fine-tuning on data that has nothing to do with the forget set can still bring forgotten knowledge back when the
unlearning only suppressed it (Lynch et al. 2024, arXiv 2402.16835; Hu et al. 2024, arXiv 2406.13356, whose
targeted form is the relearning evaluation, ``relearn``). ``benign_ft`` fine-tunes a copy of the model for ``STEPS``
AdamW steps (lr ``LR``, batches of ``BATCH``) on ``N_ITEMS`` retain question-answer pairs drawn with a fixed seed
from the retain training pairs that the evaluation does not score, then scores the forget and retain answers.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from bench.attacks.base import Attack, AttackContext, PerItem, plain_scores
from bench.data.sampling import EpochSampler
from bench.data.tokenize import encode_qa
from bench.methods.base import sequence_nll
from bench.registry import ATTACKS

N_ITEMS, STEPS, LR, BATCH, SEED = 16, 20, 5e-4, 8, 0


def benign_items(ctx: AttackContext) -> list[tuple[str, str]]:
    """``N_ITEMS`` retain training pairs, seeded, none of them an item the evaluation scores."""
    scored = set(ctx.qa("retain")[0])
    pairs = [(q, a) for q, a, _ in ctx.data.unlearning_pairs("retain") if q not in scored]
    rng = np.random.default_rng(SEED)
    return [pairs[i] for i in sorted(rng.choice(len(pairs), size=min(N_ITEMS, len(pairs)), replace=False))]


@ATTACKS.register("benign_ft")
class BenignFinetune(Attack):
    name = "benign_ft"
    cost = "expensive"  # a training run
    summary = f"{STEPS} AdamW steps (lr {LR}) on {N_ITEMS} unscored retain pairs, then the plain scores"
    paper = "Lynch et al. 2024, arXiv 2402.16835; Hu et al. 2024, arXiv 2406.13356"

    def scores(self, model: torch.nn.Module, ctx: AttackContext) -> PerItem:
        return plain_scores(self.attacked(model, ctx)[0], ctx)

    def attacked(self, model: torch.nn.Module, ctx: AttackContext) -> tuple[torch.nn.Module, str]:
        tokenizer, template = ctx.tokenizer, ctx.data.config.prompt_template
        train = [encode_qa(tokenizer, template, q, a, add_eos=True) for q, a in benign_items(ctx)]
        attacked = copy.deepcopy(model)
        device = next(attacked.parameters()).device
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            params = list(attacked.parameters())
            for p in params:
                p.requires_grad_(True)
            optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
            sampler = EpochSampler(train, min(BATCH, len(train)), tokenizer.pad_token_id,
                                   torch.Generator().manual_seed(SEED))
            attacked.train()
            for _ in range(STEPS):
                loss = sequence_nll(attacked, sampler.next().to(device)).mean()
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            attacked.eval()
        return attacked, template
