"""``ubench perf``: the harness's unlearning-step time over a bare PyTorch step, measured in one process.

Both sides start from the same target weights and see the same forget items (one batch of ``budget.batch_size``,
so every step pads to the same length): the harness through ``train.unlearn`` with the registered method (sampler,
collation, method loss, finiteness check, accumulation bookkeeping), the bare side as a hand-written loop of
``model(input_ids, attention_mask, labels).loss`` negated for ascent, ``backward``, ``AdamW.step``. Runs alternate
(harness, bare, harness, ...) so drift in machine speed hits both; the ratio is of the medians.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from bench.data.tasks import load_task
from bench.data.tokenize import collate, encode_qa
from bench.methods.base import ReferenceModel, make_method
from bench.models.tiny import get_model, get_tokenizer
from bench.spec import Budget
from bench.train import unlearn


@dataclass
class PerfReport:
    method: str
    steps: int
    batch_size: int
    harness_ms: list[float]
    bare_ms: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.harness_ms) / statistics.median(self.bare_ms)

    def text(self) -> str:
        h, b = statistics.median(self.harness_ms), statistics.median(self.bare_ms)
        verdict = "ok" if self.ratio <= 1.05 else "over goal"
        return (f"unlearning step, method {self.method}, batch {self.batch_size}, {self.steps} steps x "
                f"{len(self.harness_ms)} alternating repeats, {torch.get_num_threads()} threads\n"
                f"  harness step: {h:8.2f} ms (median; min {min(self.harness_ms):.2f}, "
                f"max {max(self.harness_ms):.2f})\n"
                f"  bare step:    {b:8.2f} ms (median; min {min(self.bare_ms):.2f}, max {max(self.bare_ms):.2f})\n"
                f"  ratio harness/bare: {self.ratio:.3f} (goal <= 1.05: {verdict})")


def _bare_steps(model: torch.nn.Module, batch, steps: int, lr: float) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        loss = -model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps * 1000


def step_overhead(task: str, split: str, method_name: str, steps: int = 30, repeats: int = 5,
                  batch_size: int = 16) -> PerfReport:
    data = load_task(task, split)
    tokenizer = get_tokenizer(data)
    target = get_model(data, "target")
    template = data.config.prompt_template
    forget = [encode_qa(tokenizer, template, q, a, add_eos=True)
              for q, a in zip(data.forget["question"][:batch_size], data.forget["answer"][:batch_size])]
    retain = [encode_qa(tokenizer, template, q, a, add_eos=True)
              for q, a in zip(data.retain["question"][:batch_size], data.retain["answer"][:batch_size])]
    idk = [encode_qa(tokenizer, template, q, a, add_eos=True)
           for q, a in zip(data.forget["question"][:batch_size], data.forget["idk_answer"][:batch_size])]
    batch = collate(forget, tokenizer.pad_token_id)
    method = make_method(method_name)
    budget = Budget(steps=steps, lr=1e-5, batch_size=batch_size)
    reference = ReferenceModel(target.load()) if method.needs_reference else None
    harness, bare = [], []
    for _ in range(repeats + 1):  # the first round warms allocator and caches and is discarded
        model = target.load()
        result = unlearn(model, method, forget, retain, budget, seed=0, pad_id=tokenizer.pad_token_id,
                         reference=reference, idk=idk)
        harness.append(result.seconds / steps * 1000)
        bare.append(_bare_steps(target.load(), batch, steps, budget.lr))
    return PerfReport(method_name, steps, batch_size, harness[1:], bare[1:])


@dataclass
class CalibrationReport:
    method: str
    probe_calls: int
    scoring_passes: int
    alpha: float
    pass_ms: float
    full_eval_ms: float
    control_seconds: float

    @property
    def ratio(self) -> float:
        return self.scoring_passes / self.probe_calls

    def text(self) -> str:
        return (f"calibration by model mixing, method {self.method} (alpha* = {self.alpha:.4f})\n"
                f"  probes asked (bisection + trade-off grid): {self.probe_calls}\n"
                f"  scoring passes run:                        {self.scoring_passes}\n"
                f"  ratio passes/probes: {self.ratio:.3f} (< 1: the endpoints come from stored records and the grid "
                f"reuses bisection points)\n"
                f"  one probe pass (teacher-forced, forget+retain answers): {self.pass_ms:8.1f} ms; "
                f"full evaluation: {self.full_eval_ms:8.1f} ms\n"
                f"  whole control step (probes + full evaluation at alpha*): {self.control_seconds:.2f} s")


def calibration_cost(task: str, split: str, method_name: str, tier_name: str = "standard") -> CalibrationReport:
    """Run one controlled run into a temporary store and read its calibration accounting; time one probe pass
    against one full evaluation of the same model."""
    import tempfile

    from bench.control.calibrate import AnswerScorer
    from bench.control.tiers import tier
    from bench.runner import execute, make_run_spec
    from bench.store import Store

    data = load_task(task, split)
    with tempfile.TemporaryDirectory() as tmp:
        record = execute(make_run_spec(task, split, method_name, {}, tier(tier_name), seed=0), Store(tmp))
    if record["status"] != "ok":
        raise RuntimeError(f"calibration perf run failed: {record['error']}")
    cal = record["control"]["calibration"]
    scorer = AnswerScorer(get_tokenizer(data), data)
    model = get_model(data, "target").load()
    scorer(model)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        scorer(model)
        times.append((time.perf_counter() - start) * 1000)
    return CalibrationReport(method_name, cal["probe_calls"], cal["scoring_passes"], cal["alpha"],
                             statistics.median(times), record["timings"]["eval_seconds"] * 1000,
                             record["timings"]["control_seconds"])
