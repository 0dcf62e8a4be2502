"""``ubench perf --only eval``: forward tokens of a full evaluation against the minimum, and against a naive
evaluation that gives every metric its own pass.

One evaluation of the target runs under a forward pre-hook that counts every token position the model processes
(padded positions and generation steps of finished rows included: what the hardware does) and under the engine's
``CostLedger`` (the unpadded length of every sequence each product needs, and of every prompt and generation).

* **minimal** = sum over (split, product) of the unpadded lengths of its sequences (one teacher-forced pass per
  split over the union of what its metrics read) + sum over generated items of prompt + generated - 1 tokens (one
  greedy generation with a KV cache: each prompt token once, each new token fed back once, the last never).
* **measured** = the hook's count for the real evaluation: ratio measured / minimal is the engine's waste
  (padding and finished rows still in a generation batch) less what it saves by running a prompt shared by an
  item's answer, paraphrased and perturbed answers once (``engine._packs``). Goal <= 1.2.
* **naive** = what an evaluation with one pass per metric would process: for every metric on every split and
  every product it ``reads``, a separate pass in dataset order (batches of ``eval.batch_size`` padded to their
  longest sequence; a generation per generation-reading metric, padded likewise). Computed from the ledger's
  lengths of the same run, so both ratios describe the same items and generations.

GradNorm (a backward pass per item), the relearning attack (fine-tuning) and lm-eval (an external harness) are
not part of the one-pass engine and are not counted here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from bench.data.tasks import load_task
from bench.metrics.engine import CostLedger, cost_ledger
from bench.metrics.evaluate import SELF, evaluate
from bench.models.tiny import get_model, get_tokenizer

GOAL = 1.2


def minimal_tokens(ledger: CostLedger) -> int:
    """One teacher-forced pass per split over every sequence needed, unpadded, plus one KV-cached generation."""
    teacher_forced = sum(sum(lengths) for products in ledger.products.values() for lengths in products.values())
    generation = sum(p + max(g - 1, 0) for prompts, generated in ledger.generations.values()
                     for p, g in zip(prompts, generated))
    return teacher_forced + generation


def _padded(lengths: list[int], batch_size: int) -> int:
    return sum(len(chunk) * max(chunk) for chunk in (lengths[i: i + batch_size]
                                                     for i in range(0, len(lengths), batch_size)))


def _padded_generation(prompts: list[int], generated: list[int], batch_size: int) -> int:
    total = 0
    for i in range(0, len(prompts), batch_size):
        p, g = prompts[i: i + batch_size], generated[i: i + batch_size]
        total += len(p) * max(p) + len(p) * max(max(g) - 1, 0)
    return total


def naive_tokens(ledger: CostLedger) -> int:
    """Every metric its own pass per product it reads, in dataset order (see the module docstring)."""
    total = 0
    for split, metric_reads in ledger.reads.items():
        for reads in metric_reads:
            for product in reads:
                if product == "generation":
                    total += _padded_generation(*ledger.generations[split], ledger.batch_size)
                else:
                    total += _padded(ledger.products[split][product], ledger.batch_size)
    return total


class _TokenCounter:
    """Forward pre-hook on the decoder (the engine calls it directly where it needs no logits, and every full
    forward goes through it): adds input_ids.numel() of every call."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.tokens = 0
        self.calls = 0
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
        self.handle = decoder.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            self.tokens += ids.numel()
            self.calls += 1


@dataclass
class EvalCostReport:
    task: str
    split: str
    minimal: int
    measured: int
    naive: int
    forward_calls: int
    seconds: float
    per_split: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.measured / self.minimal

    @property
    def naive_ratio(self) -> float:
        return self.naive / self.minimal

    def text(self) -> str:
        verdict = "ok" if self.ratio <= GOAL else "over goal"
        splits = ", ".join(f"{k} {v}" for k, v in self.per_split.items())
        return (f"evaluation cost, target of {self.task}/{self.split}: {self.forward_calls} forward calls, "
                f"{self.seconds:.1f} s, {torch.get_num_threads()} threads\n"
                f"  minimal tokens (one teacher-forced pass + one generation per split): {self.minimal}\n"
                f"    sequences per split: {splits}\n"
                f"  measured tokens (full evaluation, every metric): {self.measured}\n"
                f"  naive tokens (one pass per metric, dataset order): {self.naive}\n"
                f"  ratio measured/minimal: {self.ratio:.3f} (goal <= {GOAL}: {verdict}); "
                f"naive/minimal: {self.naive_ratio:.2f}")


def eval_cost(task: str = "synthetic", split: str = "forget10") -> EvalCostReport:
    """Evaluate the task's target once, counting tokens (see the module docstring)."""
    data = load_task(task, split)
    tokenizer = get_tokenizer(data)
    model = get_model(data, "target").load()
    counter = _TokenCounter(model)
    start = time.perf_counter()
    try:
        with cost_ledger() as ledger:
            evaluate(model, tokenizer, data, SELF)  # the target as its own reference: no oracle needed
    finally:
        counter.handle.remove()
    seconds = time.perf_counter() - start
    per_split = {s: sum(len(v) for v in products.values()) for s, products in ledger.products.items()}
    return EvalCostReport(data.config.ref, split, minimal_tokens(ledger), counter.tokens, naive_tokens(ledger),
                          counter.calls, seconds, per_split)
