"""What a run record holds besides its spec: the evaluation's metrics (value, stderr, n, split, interval, item
draws), the metrics computed outside the one-pass engine (lm-eval utility, the relearning attack), and the
environment that can change a number."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import time
from functools import cache
from typing import Any

import numpy as np
import torch

from bench.data.tasks import TaskData
from bench.metrics.evaluate import Evaluation
from bench.metrics.lm_eval_utility import lm_eval_utility
from bench.metrics.robustness import relearn_attack
from bench.runtime.device import device_name, runtime
from bench.runtime.numerics import numerics_env
from bench.runtime.paths import REPO_ROOT
from bench.runtime.sections import MetricEntry

NUMBER_PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "scipy", "scikit-learn", "rouge-score",
                   "datasets", "lm-eval", "peft", "accelerate", "safetensors")  # every package that can move a number


@cache
def _static_env() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return ""

    return {"python": platform.python_version(), **{name: version(name) for name in NUMBER_PACKAGES},
            "mkl": torch.backends.mkl.is_available() and torch.__config__.show().split("Math Kernel Library Version")[
                -1].split("Product")[0].strip() or "",
            "git_commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


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


LM_EVAL = "lm_eval/"


def lm_eval_metrics(model, tokenizer, data: TaskData) -> dict[str, MetricEntry]:
    """The task's ``lm_eval_tasks`` through lm-eval (``bench.metrics.lm_eval_utility``), as record metrics
    ``lm_eval/<task>/<metric>`` with lm-eval's standard error and a normal 95% interval value +- 1.96 stderr
    (clipped to [0, 1]; lm-eval reports no per-item values to bootstrap without logging every sample)."""
    if not data.config.lm_eval_tasks:
        return {}
    out = {}
    for key, value in lm_eval_utility(model, tokenizer, data, data.config.lm_eval_tasks,
                                      batch_size=data.config.eval.batch_size).items():
        stderr = value["stderr"]
        low, high = ((max(0.0, value["value"] - 1.96 * stderr), min(1.0, value["value"] + 1.96 * stderr))
                     if stderr is not None else (None, None))
        out[LM_EVAL + key] = MetricEntry(value["value"], stderr, value["n"], "lm_eval", low, high)
    return out


def relearn_metrics(model, tokenizer, data: TaskData) -> dict[str, MetricEntry]:
    """The relearning attack (``bench.metrics.robustness``, default ``RelearnSpec``) as record metrics
    ``relearn/...``."""
    attack = relearn_attack(model, tokenizer, data)
    return {key: MetricEntry(value, None, 1, "relearn") for key, value in attack.items()}


def external_metrics(model, tokenizer, data: TaskData, timings: dict[str, float] | None = None
                     ) -> dict[str, MetricEntry]:
    """What the one-pass engine does not compute: lm-eval utility and the relearning attack (run once per
    evaluated model; calibration probes and calibrated models skip them). Their wall times go into ``timings``."""
    out: dict[str, MetricEntry] = {}
    for name, fn in (("lm_eval", lm_eval_metrics), ("relearn", relearn_metrics)):
        start = time.perf_counter()
        out.update(fn(model, tokenizer, data))
        if timings is not None:
            timings[f"{name}_seconds"] = round(time.perf_counter() - start, 3)
    return out


def metrics_dict(evaluation: Evaluation) -> dict[str, MetricEntry]:
    """The record's metrics: value, stderr, n, split, the bootstrap interval over items and ``boot``, the metric on
    each shared item draw (6 significant digits), which the board's hierarchical bootstrap over seeds resamples."""
    def boot(values) -> tuple[float | None, ...] | None:
        return None if values is None else tuple(None if not np.isfinite(x) else float(f"{x:.6g}") for x in values)

    return {k: MetricEntry(v.value, v.stderr, v.n, v.split, v.ci_low, v.ci_high, boot(v.replicates))
            for k, v in sorted(evaluation.metrics.items())}
