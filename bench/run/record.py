"""What a run record holds besides its spec: the evaluation's metrics (value, stderr, n, split, interval, item
draws), the metrics of the registered evaluations outside the one-pass engine (lm-eval utility, the relearning
attack, a plug-in's), and the environment that can change a number."""

from __future__ import annotations

import importlib.metadata
import platform
import time
from functools import cache
from typing import Any

import torch

from bench.data.tasks import TaskData
from bench.metrics.evaluate import Evaluation
from bench.registry import EVALUATIONS
from bench.runtime.checkout import git_state
from bench.runtime.device import device_name, runtime
from bench.runtime.numerics import numerics_env
from bench.runtime.sections import MetricEntry, stored_boot

NUMBER_PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "scipy", "scikit-learn", "rouge-score",
                   "datasets", "lm-eval", "peft", "accelerate", "safetensors")  # every package that can move a number


@cache
def _static_env() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return ""

    return {"python": platform.python_version(), **{name: version(name) for name in NUMBER_PACKAGES},
            "mkl": torch.backends.mkl.is_available() and torch.__config__.show().split("Math Kernel Library Version")[
                -1].split("Product")[0].strip() or "",
            "git_commit": git_state().commit, "dirty": git_state().dirty}


def env_info() -> dict[str, Any]:
    """Versions, code state and numerics (``bench.runtime.numerics.numerics_env``: threads, CPU capability, kernel
    settings, CPU model) that can change a number; timing-free, so records stay comparable. Not part of a
    record's evidence: a release compares numbers, and the env says why two differ."""
    return {**_static_env(), "device": "cpu", **numerics_env()}


def run_env() -> dict[str, Any]:
    """``env_info`` with the device of the current runtime (``cpu``, ``cuda:0 (NVIDIA H100 ...)``) and, off the
    default fp32 path, its precision."""
    rt = runtime()
    extra = {"autocast": rt.autocast} if rt.autocast else {}
    if rt.gradient_checkpointing:
        extra["gradient_checkpointing"] = True
    return {**env_info(), "device": device_name(rt.device), **extra}


def external_metrics(model, tokenizer, data: TaskData, timings: dict[str, float] | None = None
                     ) -> dict[str, MetricEntry]:
    """What the one-pass engine does not compute: every registered evaluation with a ``compute`` (lm-eval utility,
    the relearning attack, a plug-in's), in name order, once per evaluated model (calibration probes and calibrated
    models skip them). Their wall times go into ``timings`` as ``<name>_seconds``."""
    out: dict[str, MetricEntry] = {}
    for name in EVALUATIONS.names():
        compute = EVALUATIONS.get(name).compute
        if compute is None:
            continue
        start = time.perf_counter()
        out.update(compute(model, tokenizer, data))
        if timings is not None:
            timings[f"{name}_seconds"] = round(time.perf_counter() - start, 3)
    return out


def metrics_dict(evaluation: Evaluation) -> dict[str, MetricEntry]:
    """The record's metrics: value, stderr, n, split, the bootstrap interval over items and ``boot``, the metric on
    each shared item draw (6 significant digits), which the board's hierarchical bootstrap over seeds resamples."""
    return {k: MetricEntry(v.value, v.stderr, v.n, v.split, v.ci_low, v.ci_high, stored_boot(v.replicates))
            for k, v in sorted(evaluation.metrics.items())}
