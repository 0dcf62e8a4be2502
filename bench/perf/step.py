"""``ubench perf --only step``: the harness's unlearning-step time over a bare PyTorch step, in one process.

Both sides start from the same target weights and see the same forget items (one batch of ``budget.batch_size``,
so every step pads to the same length): the harness through ``bench.run.train.unlearn`` with the registered method
(sampler, collation, method loss, finiteness check, accumulation bookkeeping), the bare side as a hand-written loop
of ``model(input_ids, attention_mask, labels).loss`` negated for ascent, ``backward``, ``AdamW.step``. Runs
alternate (harness, bare, harness, ...) so drift in machine speed hits both; the ratio is of the medians.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from bench.data.alternates import alternate_answers
from bench.data.tasks import load_task
from bench.data.tokenize import collate, encode_qa
from bench.methods.base import ReferenceModel, make_method
from bench.models.presets import apply_to_task, load_preset, preset_models, preset_tokenizer
from bench.models.tiny import get_model, get_tokenizer
from bench.run.runspec import runtime_for
from bench.run.train import unlearn
from bench.runtime.device import peak_memory_gib, runtime, use_runtime
from bench.specs.run import Budget


@dataclass
class PerfReport:
    method: str
    steps: int
    batch_size: int
    harness_ms: list[float]
    bare_ms: list[float]
    device: str = "cpu"
    autocast: str = ""
    peak_memory_gib: float | None = None

    @property
    def ratio(self) -> float:
        return statistics.median(self.harness_ms) / statistics.median(self.bare_ms)

    def text(self) -> str:
        h, b = statistics.median(self.harness_ms), statistics.median(self.bare_ms)
        verdict = "ok" if self.ratio <= 1.05 else "over goal"
        precision = f", autocast {self.autocast}" if self.autocast else ""
        memory = f", peak memory {self.peak_memory_gib:.2f} GiB" if self.peak_memory_gib is not None else ""
        return (f"unlearning step, method {self.method}, batch {self.batch_size}, {self.steps} steps x "
                f"{len(self.harness_ms)} alternating repeats, device {self.device}{precision}{memory}, "
                f"{torch.get_num_threads()} threads\n"
                f"  harness step: {h:8.2f} ms (median; min {min(self.harness_ms):.2f}, "
                f"max {max(self.harness_ms):.2f})\n"
                f"  bare step:    {b:8.2f} ms (median; min {min(self.bare_ms):.2f}, max {max(self.bare_ms):.2f})\n"
                f"  ratio harness/bare: {self.ratio:.3f} (goal <= 1.05: {verdict})")


def _bare_steps(model: torch.nn.Module, batch, steps: int, lr: float) -> float:
    """A hand-written ascent loop on one batch (under the run's autocast, as the harness computes): ms per step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    _synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        with runtime().autocast_context():
            loss = -model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _synchronize()
    return (time.perf_counter() - start) / steps * 1000


def _synchronize() -> None:
    if runtime().device.type == "cuda":
        torch.cuda.synchronize(runtime().device)


def step_overhead(task: str, split: str, method_name: str, steps: int = 30, repeats: int = 5,
                  batch_size: int = 16, model: str | None = None) -> PerfReport:
    """Harness vs bare step time on the selected device (``$UBENCH_DEVICE``), on the task's tiny target or on a
    model preset's target (``model``) in the preset's precision."""
    preset = None
    if model:
        preset = load_preset(model)
    with use_runtime(runtime_for(preset)):
        return _step_overhead(task, split, method_name, steps, repeats, batch_size, preset)


def _step_overhead(task: str, split: str, method_name: str, steps: int, repeats: int, batch_size: int,
                   preset) -> PerfReport:
    data = load_task(task, split)
    if preset is not None:
        apply_to_task(preset, data)
        tokenizer = preset_tokenizer(preset)
        target = preset_models(preset, data, tokenizer)["target"]
    else:
        tokenizer = get_tokenizer(data)
        target = get_model(data, "target")
    template = data.config.prompt_template
    forget = [encode_qa(tokenizer, template, q, a, add_eos=True)
              for q, a in zip(data.forget["question"][:batch_size], data.forget["answer"][:batch_size])]
    retain = [encode_qa(tokenizer, template, q, a, add_eos=True)
              for q, a in zip(data.retain["question"][:batch_size], data.retain["answer"][:batch_size])]
    idk = [encode_qa(tokenizer, template, q, a, add_eos=True)
           for q, a in zip(data.forget["question"][:batch_size], data.forget["idk_answer"][:batch_size])]
    batch = collate(forget, tokenizer.pad_token_id).to(runtime().device)
    method = make_method(method_name)
    alternate = ([encode_qa(tokenizer, template, q, a, add_eos=True)  # AltPO's preferred answers
                  for q, a in zip(data.forget["question"][:batch_size], alternate_answers(data)[:batch_size])]
                 if method.needs_alternate else None)
    budget = Budget(steps=steps, lr=1e-5, batch_size=batch_size)
    reference = ReferenceModel(target.load()) if method.needs_reference else None
    harness, bare = [], []
    for _ in range(repeats + 1):  # the first round warms allocator and caches and is discarded
        model = target.load()
        result = unlearn(model, method, forget, retain, budget, seed=0, pad_id=tokenizer.pad_token_id,
                         reference=reference, idk=idk, alternate=alternate)
        _synchronize()
        harness.append(result.seconds / steps * 1000)
        del model
        bare.append(_bare_steps(target.load(), batch, steps, budget.lr))
    device = runtime().device
    return PerfReport(method_name, steps, batch_size, harness[1:], bare[1:], str(device), runtime().autocast,
                      peak_memory_gib(device))
