"""``ubench perf --only geffect``: what recording the G-effect (``bench.geffect``) costs over an unlearning step."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch

from bench.data.alternates import alternate_answers
from bench.data.tasks import load_task
from bench.data.tokenize import TokenBatch, collate, encode_qa
from bench.geffect.compute import (
    blockwise_dot_and_sq_norm,
    blockwise_sq_norm,
    directional_derivatives,
    grads_of,
    measure,
    objective_gradient,
    per_item_logprob,
    risk_gradient,
    step_changes,
    trainable,
)
from bench.methods.base import LossContext, Method, ReferenceModel, UnlearnBatch, make_method
from bench.models.tiny import BuiltModel, get_model, get_tokenizer
from bench.run.train import unlearn
from bench.specs.run import Budget


@dataclass
class GEffectReport:
    """Cost of the G-effect recording (``bench.geffect``), one process, medians of alternating repeats.

    (a) one measurement restricted to D in {forget, retain} (grad L_u, two risk gradients, blockwise products; no
    per-instance values) over one unlearning step of the harness; (b) the per-instance PG-effect of N forget items
    in one forward-mode pass over N backward passes, one per item, each followed by the dot product (through the
    batch's graph after one forward, and, the cheaper baseline on a CPU, each item alone);
    (c) the extra memory a measurement holds: whole gradients alive at once, and the CUDA peak when there is one;
    (d) the step changes recorded after the update of a measured step (``step_changes`` on D in {forget, retain}:
    a copy of theta_t, per set one reverse-mode risk gradient at theta_t, the blockwise dot with the update and one
    forward at theta_t+1) over one unlearning step.
    """

    task: str
    method: str
    batch_size: int
    steps: int
    measure_ms: list[float]
    step_ms: list[float]
    instance_fast_ms: list[float]
    instance_exact_ms: list[float]  # each item alone: its own forward and backward pass
    instance_graph_ms: list[float]  # one forward of the batch, then N backward passes through its graph
    parts_ms: dict[str, list[float]]  # where one measurement's time goes
    grad_bytes: int
    grads_alive: int
    instance_max_rel_diff: float
    cuda_peak_bytes: int | None = None
    cuda_step_peak_bytes: int | None = None
    device: str = "cpu"
    step_change_ms: list[float] = field(default_factory=list)

    @property
    def measure_ratio(self) -> float:
        return statistics.median(self.measure_ms) / statistics.median(self.step_ms)

    @property
    def instance_ratio(self) -> float:
        """jvp pass over N backward passes, one per item through the batch's graph (one forward)."""
        return statistics.median(self.instance_fast_ms) / statistics.median(self.instance_graph_ms)

    @property
    def instance_ratio_alone(self) -> float:
        """jvp pass over N forward + backward passes of each item alone (no padding): the cheaper baseline here."""
        return statistics.median(self.instance_fast_ms) / statistics.median(self.instance_exact_ms)

    def text(self) -> str:
        def med(values: list[float]) -> str:
            return f"{statistics.median(values):8.2f} ms (median; min {min(values):.2f}, max {max(values):.2f})"

        def verdict(ratio: float, goal: float) -> str:
            return f"goal <= {goal}: {'ok' if ratio <= goal else 'over goal'}"

        n, mib = self.batch_size, 2.0 ** 20
        parts = ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in self.parts_ms.items())
        lines = [
            f"G-effect recording cost, task {self.task}, method {self.method}, batch {n}, {self.steps} steps x "
            f"{len(self.measure_ms)} alternating repeats, {self.device}, {torch.get_num_threads()} threads",
            f"  (a) one measurement, D = forget + retain, per block: {med(self.measure_ms)}",
            f"      one unlearning step (harness):                    {med(self.step_ms)}",
            f"      ratio measurement/step: {self.measure_ratio:.3f} ({verdict(self.measure_ratio, 2.0)})",
            f"      measurement parts: {parts}",
            f"  (b) per-instance PG-effect of {n} forget items, one jvp pass:          {med(self.instance_fast_ms)}",
            f"      one forward + {n} backward passes through its graph, each + dot: {med(self.instance_graph_ms)}",
            f"      ratio jvp/backward: {self.instance_ratio:.3f} ({verdict(self.instance_ratio, 0.3)})",
            f"      {n} items each alone (own forward + backward, no padding) + dot: {med(self.instance_exact_ms)}",
            f"      ratio jvp/items alone: {self.instance_ratio_alone:.3f} ({verdict(self.instance_ratio_alone, 0.3)})",
            f"      largest relative difference between the jvp and backward values: {self.instance_max_rel_diff:.1e}",
            f"  (c) extra memory of a measurement: {self.grads_alive} whole gradients alive (grad L_u + one risk "
            f"gradient) x {self.grad_bytes / mib:.2f} MiB = {self.grads_alive * self.grad_bytes / mib:.2f} MiB "
            f"(an AdamW step holds 3: gradient + 2 moments)",
        ]
        if self.cuda_peak_bytes is None:
            lines.append("      CUDA peak: no CUDA device")
        if self.step_change_ms:
            ratio = statistics.median(self.step_change_ms) / statistics.median(self.step_ms)
            lines += [f"  (d) step changes after a measured update (realised per block + measured), D = forget + "
                      f"retain: {med(self.step_change_ms)}",
                      f"      ratio step changes/step: {ratio:.3f} ({verdict(ratio, 2.0)})"]
        else:
            lines.append(f"      CUDA peak above the resident model during a measurement: "
                         f"{self.cuda_peak_bytes / mib:.2f} MiB (one unlearning step: "
                         f"{(self.cuda_step_peak_bytes or 0) / mib:.2f} MiB)")
        return "\n".join(lines)


def _single_rows(batch) -> list:
    """Each row of a right-padded batch alone, its padding trimmed."""
    out = []
    for i in range(len(batch)):
        n = int(batch.attention_mask[i].sum())
        out.append(TokenBatch(batch.input_ids[i:i + 1, :n], batch.attention_mask[i:i + 1, :n],
                              batch.labels[i:i + 1, :n], batch.index[i:i + 1]))
    return out


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000, value


@dataclass
class _Bench:
    """What ``geffect_cost`` measures on: the method and its loss context, the objective batch and the risk batches
    (built the way the recorder builds them), the model the measurements differentiate, and the unlearning inputs
    of the harness steps it is compared against."""

    target: BuiltModel  # the task's cached target model (``load()`` gives a fresh copy)
    instance: Method
    ctx: LossContext
    reference: ReferenceModel | None
    objective: UnlearnBatch
    risks: dict[str, TokenBatch]
    forget: list
    retain: list
    idk: list
    alternate: list | None  # AltPO's preferred answers
    pad: int
    model: torch.nn.Module
    names: list[str]
    params: list[torch.Tensor]
    single: list[TokenBatch]
    device: torch.device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def _prepare(task: str, split: str, method: str, batch_size: int) -> _Bench:
    """The first ``batch_size`` forget / retain items of the task split, encoded (objective rows with EOS, risk rows
    without) and collated on the device (CUDA when available), with the method and a copy of the target model."""
    data = load_task(task, split)
    tokenizer = get_tokenizer(data)
    target = get_model(data, "target")
    template, pad = data.config.prompt_template, tokenizer.pad_token_id
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def encode(ds, column: str = "answer", eos: bool = True) -> list:
        return [encode_qa(tokenizer, template, q, a, add_eos=eos)
                for q, a in zip(ds["question"][:batch_size], ds[column][:batch_size])]

    forget, retain, idk = encode(data.forget), encode(data.retain), encode(data.forget, "idk_answer")
    rows = list(range(len(forget)))
    instance = make_method(method)
    alternate = (encode(data.forget.add_column("alternate", alternate_answers(data)[:len(data.forget)]), "alternate")
                 if instance.needs_alternate else None)
    objective = UnlearnBatch(collate(forget, pad, rows).to(device),
                             collate(retain, pad, rows).to(device) if instance.needs_retain else None,
                             collate(idk, pad, rows).to(device) if instance.needs_idk else None,
                             collate(alternate, pad, rows).to(device) if alternate is not None else None)
    risks = {"forget": collate(encode(data.forget, eos=False), pad, rows).to(device),
             "retain": collate(encode(data.retain, eos=False), pad, rows).to(device)}
    reference = ReferenceModel(target.load().to(device)) if instance.needs_reference else None
    model = target.load().to(device)
    named = trainable(model)
    return _Bench(target, instance, LossContext(reference=reference), reference, objective, risks, forget, retain,
                  idk, alternate, pad, model, [n for n, _ in named], [p for _, p in named],
                  _single_rows(risks["forget"]), device)


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The cheapest whole-model dot product: float32 BLAS dots, one transfer."""
    return float(torch.stack([torch.dot(x.flatten(), y.flatten()) for x, y in zip(a, b)]).sum())


def _per_item_backward(bench: _Bench, g_r: list[torch.Tensor]) -> list[float]:
    """Each forget item alone: its own forward and backward pass, then the dot product with ``g_r``."""
    return [_dot(grads_of(per_item_logprob(bench.model, row)[0], bench.params), g_r) for row in bench.single]


def _per_item_graph(bench: _Bench, g_r: list[torch.Tensor]) -> list[float]:
    """One forward of the forget batch, then one backward pass per item through its graph, each + dot."""
    values = per_item_logprob(bench.model, bench.risks["forget"])
    out = []
    for i in range(len(values)):
        grads = torch.autograd.grad(values[i], bench.params, retain_graph=i + 1 != len(values), allow_unused=True)
        out.append(_dot([torch.zeros_like(p) if g is None else g for g, p in zip(grads, bench.params)], g_r))
    return out


def _parts(bench: _Bench) -> dict[str, float]:
    """Where one measurement's time goes: each risk gradient, and the blockwise products together (ms)."""
    out: dict[str, float] = {}
    _, (g_u, _) = _timed(lambda: objective_gradient(bench.model, bench.instance, bench.objective,
                                                    bench.ctx))  # reused from the step
    products, _ = _timed(lambda: blockwise_sq_norm(bench.names, g_u))
    for name, batch in bench.risks.items():
        out[f"grad R({name})"], g_r = _timed(lambda b=batch: risk_gradient(bench.model, b))
        products += _timed(lambda g=g_r: blockwise_dot_and_sq_norm(bench.names, g, g_u))[0]
    out["blockwise products"] = products
    return out


def _round(bench: _Bench, budget: Budget, g_forget: list[torch.Tensor]) -> dict:
    """One alternating repeat: ``budget.steps`` harness steps, a measurement (mean of 3), its parts, and the three
    per-instance paths; times in ms, with the jvp values and the per-item backward values."""
    trained = unlearn(bench.target.load().to(bench.device), bench.instance, bench.forget, bench.retain, budget,
                      seed=0, pad_id=bench.pad, reference=bench.reference, idk=bench.idk,
                      alternate=bench.alternate)
    bench.sync()
    g_step, _ = objective_gradient(bench.model, bench.instance, bench.objective,
                                   bench.ctx)  # what the step's backward left in .grad
    took = statistics.mean(_timed(lambda g=g_step: (measure(bench.model, None, None, None, bench.risks,
                                                            objective_grads=g), bench.sync()))[0]
                           for _ in range(3))  # a step's time is a mean over ``steps`` steps: average both
    split_up = _parts(bench)
    bench.sync()
    fast, values = _timed(lambda: (directional_derivatives(bench.model, per_item_logprob, bench.risks["forget"],
                                                           g_forget).tolist()))
    exact, expected = _timed(lambda: _per_item_backward(bench, g_forget))
    graph, _ = _timed(lambda: _per_item_graph(bench, g_forget))
    # the recorder's copy of theta_t and its step changes (the cost does not depend on the update's values)
    changes, _ = _timed(lambda: (step_changes(bench.model, [p.detach().clone() for p in bench.params], bench.risks),
                                 bench.sync()))
    return {"step": trained.seconds / budget.steps * 1000, "measure": took, "fast": fast, "exact": exact,
            "graph": graph, "parts": split_up, "values": values, "expected": expected, "step_change": changes}


def _cuda_peaks(bench: _Bench, batch_size: int) -> tuple[int, int]:
    """CUDA memory peaks above what is resident: during one measurement, and during one unlearning step."""
    def peak(fn) -> int:
        bench.sync()
        torch.cuda.reset_peak_memory_stats(bench.device)
        base = torch.cuda.memory_allocated(bench.device)
        fn()
        bench.sync()
        return torch.cuda.max_memory_allocated(bench.device) - base

    measured = peak(lambda: measure(bench.model, bench.instance, bench.objective, bench.ctx, bench.risks))
    step_model = bench.target.load().to(bench.device)  # resident before the peak is taken, like ``model`` above
    step = peak(lambda: unlearn(step_model, bench.instance, bench.forget, bench.retain,
                                Budget(steps=1, lr=1e-5, batch_size=batch_size), seed=0, pad_id=bench.pad,
                                reference=bench.reference, idk=bench.idk, alternate=bench.alternate))
    return measured, step


def geffect_cost(task: str = "synthetic", split: str = "forget10", method: str = "ga", batch_size: int = 16,
                 repeats: int = 5, steps: int = 10) -> GEffectReport:
    """Time a G-effect measurement as the recorder makes it during training (``measure`` on D = forget + retain
    with grad L_u taken from the step's own accumulated gradient, so two risk gradients and the blockwise
    products) against ``train.unlearn`` steps, and the jvp per-instance path against one backward pass per item,
    on the task's cached target model (on CUDA when available). Batches are the first ``batch_size`` forget /
    retain items, built the way the recorder builds them (objective rows with EOS, risk rows without)."""
    bench = _prepare(task, split, method, batch_size)
    budget = Budget(steps=steps, lr=1e-5, batch_size=batch_size)
    times: dict[str, list[float]] = {"measure": [], "step": [], "fast": [], "exact": [], "graph": [],
                                     "step_change": []}
    parts_ms: dict[str, list[float]] = {}
    g_forget = risk_gradient(bench.model, bench.risks["forget"])
    max_rel = 0.0
    for round_ in range(repeats + 1):  # the first round warms allocator and caches and is discarded
        timed = _round(bench, budget, g_forget)
        max_rel = max([max_rel, *(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(timed["values"],
                                                                                 timed["expected"]))])
        if round_:
            for key, values in times.items():
                values.append(timed[key])
            for key, value in timed["parts"].items():
                parts_ms.setdefault(key, []).append(value)
    grad_bytes = sum(p.numel() * p.element_size() for p in bench.params)
    cuda_peak, cuda_step_peak = _cuda_peaks(bench, batch_size) if bench.device.type == "cuda" else (None, None)
    return GEffectReport(task, method, batch_size, steps, times["measure"], times["step"], times["fast"],
                         times["exact"], times["graph"], parts_ms, grad_bytes, 2, max_rel, cuda_peak, cuda_step_peak,
                         bench.device.type, times["step_change"])
