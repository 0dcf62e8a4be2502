"""``ubench geffect``: the G-effect (arXiv 2502.19301) of any registered method at any model checkpoint on any task
split, without an unlearning run.

The method is built as on a board (``make_method``: an unknown name or a bad hyper-parameter is a ``SpecError``
with a did-you-mean), its ``prepare`` runs on the model (as before a run's first step), and one
``GEffectRecorder`` measurement is taken at step 0 with lr 0: per data set (forget, retain, holdout, world facts)
the total e(D) = grad R(D)^T grad L_u, the cosine between the two gradients and the per-block values (exact
autograd path), and per forget item the PG-effect on D = forget and D = retain (forward-mode path). The model is
the task's cached target model, or a saved Hugging Face model folder (``--checkpoint``); a method that needs the
reference gets the frozen target, as in a run.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from bench.cli.common import load_plugins
from bench.data.tasks import load_task, load_task_config
from bench.geffect.callback import GEffectRecorder
from bench.geffect.compute import block_key
from bench.methods.base import LossContext, ReferenceModel, StepState, full_hparams, make_method
from bench.models.tiny import get_model, get_tokenizer
from bench.runtime.logs import quiet
from bench.runtime.store import atomic_write_text
from bench.specs.mapping import SpecError

SIGN_LINE = ("sign: e(D) = grad R(D)^T grad L_u; e(forget) < 0: the forget risk rises (unlearning); "
             "e(retain) >= 0 wanted")


@dataclass
class GEffectReport:
    """One step-0 measurement and what it was taken of."""

    task: str
    split: str
    method: str
    hparams: dict[str, Any]
    checkpoint: str  # "target" or the folder
    items: int
    instance_ids: list[str]
    measurement: dict  # ``GEffect.to_dict()``

    def per_instance_summary(self) -> dict[str, dict[str, float]]:
        """Per data set with per-instance values: mean, min, max and the fraction of negative values."""
        out = {}
        for data_set, values in sorted(self.measurement["per_instance"].items()):
            if values:
                out[data_set] = {"n": len(values), "mean": sum(values) / len(values), "min": min(values),
                                 "max": max(values), "fraction_negative": sum(v < 0 for v in values) / len(values)}
        return out

    def to_dict(self) -> dict:
        """The measurement (``step``, ``total``, ``blocks``, ``cosine``, ``per_instance``, ...) with the context."""
        return {**self.measurement, "task": self.task, "split": self.split, "method": self.method,
                "hparams": self.hparams, "checkpoint": self.checkpoint, "items": self.items,
                "instance_ids": self.instance_ids, "per_instance_summary": self.per_instance_summary()}

    def text(self) -> str:
        """The printed report: a header, the sign convention, the per-data-set table (total, cosine, blocks) and
        the per-instance summary table."""
        m = self.measurement
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.hparams.items()))
        lines = [f"G-effect of {self.method} ({params}) on {self.task}/{self.split} at "
                 f"{'the target model' if self.checkpoint == 'target' else self.checkpoint}, step 0, "
                 f"first {self.items} items per set",
                 f"objective L_u = {m['loss']:.6g}, ||grad L_u|| = {m['objective_norm']:.6g}", SIGN_LINE, ""]
        blocks = sorted({b for values in m["blocks"].values() for b in values}, key=block_key)
        rows = [[d, _num(m["total"][d]), _num(m["cosine"].get(d)), *(_num(m["blocks"][d].get(b)) for b in blocks)]
                for d in m["total"]]
        lines.append(tabulate(rows, headers=["D", "e(D)", "cosine", *blocks], tablefmt="github",
                              disable_numparse=True))
        summary = self.per_instance_summary()
        if summary:
            lines += ["", f"per-instance PG-effect grad R(D)^T grad log p(s_i) over {len(self.instance_ids)} "
                          "forget items s_i:"]
            rows = [[d, s["n"], _num(s["mean"]), _num(s["min"]), _num(s["max"]), f"{s['fraction_negative']:.3f}"]
                    for d, s in summary.items()]
            lines.append(tabulate(rows, headers=["D", "n", "mean", "min", "max", "fraction < 0"], tablefmt="github",
                                  disable_numparse=True))
        return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def parse_params(text: str | None) -> dict[str, Any]:
    """``--params`` JSON -> a mapping (SpecError on invalid JSON or a non-object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"--params: invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SpecError(f"--params: expected a JSON object, got {type(value).__name__}")
    return value


def _load_checkpoint(path: str):
    """A saved Hugging Face causal LM folder, in float32 and eval mode (LlamaForCausalLM first, else the Auto
    class)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise SpecError(f"--checkpoint: {path}: not a saved model folder (no config.json)")
    try:
        config = AutoConfig.from_pretrained(folder)
        cls = LlamaForCausalLM if isinstance(config, LlamaConfig) else AutoModelForCausalLM
        model = cls.from_pretrained(folder, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise SpecError(f"--checkpoint: {path}: cannot load the model ({str(exc).splitlines()[0]})") from exc
    return model.eval()


def measure_geffect(task: str, split: str, method: str, params: dict[str, Any] | None = None,
                    checkpoint: str | None = None, items: int = 16) -> GEffectReport:
    """The step-0 G-effect of ``method`` (with ``params``) at ``checkpoint`` (None: the task's cached target)
    on ``task``/``split``, measured on the first ``items`` items of each set.

    Bad input (unknown task, split or method, bad hyper-parameters, ``items`` < 1, a folder that is not a saved
    model, a model whose vocabulary does not fit the task's tokenizer) raises ``SpecError`` before any model is
    loaded where it can.
    """
    if items < 1:
        raise SpecError(f"--items: must be >= 1, got {items}")
    config = load_task_config(task)
    if split not in config.forget_splits:
        raise SpecError(f"--split: task {config.name} has no forget split {split!r} "
                        f"(known: {', '.join(config.forget_splits)})")
    instance = make_method(method, params or {})
    if checkpoint is not None and not (Path(checkpoint) / "config.json").is_file():
        raise SpecError(f"--checkpoint: {checkpoint}: not a saved model folder (no config.json)")
    data = load_task(task, split)
    tokenizer = get_tokenizer(data)
    target = get_model(data, "target")
    model = target.load() if checkpoint is None else _load_checkpoint(checkpoint)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise SpecError(f"--checkpoint: {checkpoint}: its vocabulary ({model.get_input_embeddings().num_embeddings})"
                        f" is smaller than task {config.name}'s tokenizer ({len(tokenizer)})")
    reference = ReferenceModel(target.load()) if instance.needs_reference else None
    try:
        instance.prepare(model, LossContext(reference=reference))
    except ValueError as exc:
        raise SpecError(f"--method {method}: {exc}") from exc
    recorder = GEffectRecorder(instance, data, tokenizer, reference, n_items=items)
    recorder(model, StepState(0, float("nan"), 0.0, {}))
    measurement = recorder.measurements[0].to_dict()
    return GEffectReport(task=config.ref, split=split, method=method, hparams=full_hparams(instance),
                         checkpoint="target" if checkpoint is None else str(checkpoint), items=items,
                         instance_ids=[str(i) for i in recorder.instance_ids], measurement=measurement)


def run(task: str, split: str, method: str, params: str | None = None, checkpoint: str | None = None,
        items: int = 16, out: str | None = None, echo=print) -> int:
    """The command: measure, print the report, write ``out`` (the measurement JSON) when given; exit code 0."""
    report = measure_geffect(task, split, method, parse_params(params), checkpoint, items)
    echo(report.text())
    if out:
        atomic_write_text(Path(out), json.dumps(report.to_dict(), indent=2, sort_keys=True, allow_nan=True) + "\n")
        echo(f"wrote {out}")
    return 0


def cmd_geffect(args: argparse.Namespace) -> int:
    """The G-effect of one method at one checkpoint on one task split (``measure_geffect``)."""
    load_plugins(args.plugin)
    quiet()
    return run(args.task, args.split, args.method, args.params, args.checkpoint, args.items, args.out)
