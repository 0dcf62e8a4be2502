"""RunSpec -> record. Idempotent: a stored record is returned as is; a failure is stored with its error.

Reference records (the target before unlearning and the retain oracle) are evaluations of the cached tiny models,
computed once per (task digest, split) and stored like runs, so forget quality reads the oracle's per-item truth
ratios from disk instead of re-scoring the oracle for every run.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

from bench.control.controller import Controller
from bench.data.tasks import TaskData, load_task, load_task_config
from bench.data.tokenize import encode_qa
from bench.device import Runtime, device_name, peak_memory_gib, reset_peak_memory, runtime, select_device, use_runtime
from bench.geffect.callback import GEffectRecorder
from bench.methods.base import ReferenceModel, full_hparams, make_method
from bench.metrics.evaluate import SELF, Evaluation, evaluate, per_item_from_rows
from bench.models.presets import ModelPreset, PresetModel, apply_to_task, load_preset, preset_models, preset_tokenizer
from bench.models.tiny import BuiltModel, TaskSplit, get_model, get_tokenizer, model_identity, model_key, model_split
from bench.numerics import numerics_env, pin_threads
from bench.paths import REPO_ROOT, cache_dir
from bench.spec import AdapterSpec, Budget, ControlSpec, RunSpec, content_hash
from bench.store import SCHEMA_VERSION, Store
from bench.train import NonFiniteLossError, TrainResult, unlearn

REFERENCE_KINDS = ("target", "oracle")


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
    """Versions, code state and numerics (``bench.numerics.numerics_env``: threads, CPU capability, kernel
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


def runtime_for(preset: ModelPreset | None) -> Runtime:
    """The run's device (``bench.device.select_device``) and the preset's precision settings."""
    device = select_device()
    if preset is None:
        return Runtime(device)
    # bf16 autocast pays on GPUs; on most CPUs it is slower than fp32, so a CPU run computes in the weights' dtype
    autocast = preset.autocast if device.type == "cuda" else ""
    return Runtime(device, autocast, preset.gradient_checkpointing and device.type == "cuda")


def make_run_spec(task: str, split: str, method: str, params: dict[str, Any], budget: Budget, seed: int,
                  source: str = "", path: str = "", control: ControlSpec | None = None,
                  requests: int = 1, adapter: AdapterSpec | None = None, model: str | None = None) -> RunSpec:
    """Validate the method name and hyper-parameters (SpecError / RegistryError) and pin every default."""
    from bench.spec import SpecError

    config = load_task_config(task)
    if adapter is not None and control is not None and control.kind == "early_stop":
        raise SpecError(f"{source or 'run'}: adapter: LoRA runs support control none or mixing, not early_stop")
    if requests > 1 and control is not None and control.kind == "early_stop":
        raise SpecError(f"{source or 'run'}: requests: sequential requests support control none or mixing, "
                        f"not early_stop")
    if split not in config.forget_splits:
        raise SpecError(f"{source or 'run'}: split: task {config.name} has no forget split {split!r} "
                        f"(known: {', '.join(config.forget_splits)})")
    instance = make_method(method, params, source, path)
    from bench.data.tasks import check_forget_set

    check_forget_set(task, split, config.digest)  # an empty forget set stops the board here (offline tasks)
    if adapter is not None and not instance.supports_adapter:
        raise SpecError(f"{source or 'run'}: adapter: method {method} does not support LoRA adapters")
    if adapter is not None and requests > 1:
        raise SpecError(f"{source or 'run'}: adapter: sequential requests with a LoRA adapter are not supported")
    if model:
        from bench.models.presets import load_preset, missing_oracle

        try:
            preset = load_preset(model)
        except SpecError as exc:
            raise SpecError(f"{source or 'run'}: model: {exc}") from exc
        if preset.tasks and config.name not in preset.tasks:
            raise SpecError(f"{source or 'run'}: model: preset {model} is for task(s) {', '.join(preset.tasks)}, "
                            f"not {config.name}")
        if problem := missing_oracle(preset, config, split):  # forget quality and PrivLeak need the oracle
            raise SpecError(f"{source or 'run'}: model: {problem}")
        model_fields = {"kind": "preset", "preset": preset.name, "preset_digest": preset.digest}
    else:
        data = TaskSplit(config, split)  # the ids need the recipe and the shipped hashes, not the datasets
        model_fields = {"kind": "tiny-llama",
                        "target": content_hash([config.digest, model_split(config, split, "target"), "target"]),
                        "weights": {kind: model_identity(data, kind, seed) for kind in REFERENCE_KINDS}}
    return RunSpec(task=config.ref, split=split, method=method, hparams=full_hparams(instance),
                   model={**model_fields, "task_digest": config.digest, "eval_version": EVAL_VERSION},
                   budget=budget,
                   seed=seed, control=control or ControlSpec(), requests=requests, adapter=adapter)


# Bump when the evaluation adds or changes a number: reference and run ids include it, so stored records of an
# older evaluation are recomputed instead of silently missing the new metrics.
EVAL_VERSION = 8  # 8: shared-prompt packing in the teacher-forced pass (round-off changes)


LM_EVAL = "lm_eval/"


def lm_eval_metrics(model, tokenizer, data: TaskData) -> dict[str, dict]:
    """The task's ``lm_eval_tasks`` through lm-eval (``bench.metrics.lm_eval_utility``), as record metrics
    ``lm_eval/<task>/<metric>`` with lm-eval's standard error and a normal 95% interval value +- 1.96 stderr
    (clipped to [0, 1]; lm-eval reports no per-item values to bootstrap without logging every sample)."""
    if not data.config.lm_eval_tasks:
        return {}
    from bench.metrics.lm_eval_utility import lm_eval_utility

    out = {}
    for key, value in lm_eval_utility(model, tokenizer, data, data.config.lm_eval_tasks,
                                      batch_size=data.config.eval.batch_size).items():
        stderr = value["stderr"]
        low, high = ((max(0.0, value["value"] - 1.96 * stderr), min(1.0, value["value"] + 1.96 * stderr))
                     if stderr is not None else (None, None))
        out[LM_EVAL + key] = {"value": value["value"], "stderr": stderr, "n": value["n"], "split": "lm_eval",
                              "ci_low": low, "ci_high": high}
    return out


def relearn_metrics(model, tokenizer, data: TaskData) -> dict[str, dict]:
    """The relearning attack (``bench.robustness``, default ``RelearnSpec``) as record metrics ``relearn/...``."""
    from bench.robustness import relearn_attack

    return {key: {"value": value, "stderr": None, "n": 1, "split": "relearn", "ci_low": None, "ci_high": None}
            for key, value in relearn_attack(model, tokenizer, data).items()}


def external_metrics(model, tokenizer, data: TaskData, timings: dict[str, float] | None = None) -> dict[str, dict]:
    """What the one-pass engine does not compute: lm-eval utility and the relearning attack (run once per
    evaluated model; calibration probes and calibrated models skip them). Their wall times go into ``timings``."""
    out: dict[str, dict] = {}
    for name, fn in (("lm_eval", lm_eval_metrics), ("relearn", relearn_metrics)):
        start = time.perf_counter()
        out.update(fn(model, tokenizer, data))
        if timings is not None:
            timings[f"{name}_seconds"] = round(time.perf_counter() - start, 3)
    return out


def reference_id(data: TaskData, kind: str, preset: ModelPreset | None = None, replicate: int = 0) -> str:
    """Id of the reference record of ``kind`` (target / oracle) of replicate ``replicate``: the tiny model's weight
    identity (``model_identity``) or the preset's digest (a preset has one target whatever the replicate)."""
    parts: list[Any] = [data.config.digest, data.split, kind, "eval", EVAL_VERSION]
    if preset is not None:
        return content_hash([*parts, "preset", preset.digest])
    return content_hash([*parts, "weights", model_identity(data, kind, replicate)])


def metrics_dict(evaluation: Evaluation) -> dict[str, dict]:
    """The record's metrics: value, stderr, n, split, the bootstrap interval over items and ``boot``, the metric on
    each shared item draw (6 significant digits), which the board's hierarchical bootstrap over seeds resamples."""
    def boot(values) -> dict:
        return {} if values is None else {"boot": [None if not np.isfinite(x) else float(f"{x:.6g}") for x in values]}

    return {k: {"value": v.value, "stderr": v.stderr, "n": v.n, "split": v.split, "ci_low": v.ci_low,
                "ci_high": v.ci_high, **boot(v.replicates)} for k, v in sorted(evaluation.metrics.items())}


@dataclass
class References:
    tokenizer: Any
    target: BuiltModel | PresetModel
    oracle: BuiltModel | PresetModel
    records: dict[str, dict]
    oracle_per_item: dict


def shared_references() -> Store:
    """A store of reference records beside the model cache, shared by every result store: a reference record is a
    pure function of its id (task digest, split, model kind, ``EVAL_VERSION``), so a new result store (a test's,
    a user's second board folder) copies it instead of evaluating the target and the oracle again."""
    return Store(cache_dir() / "refs")


def _copy_shared_reference(store: Store, ref_id: str) -> dict | None:
    shared = shared_references()
    if shared.root == store.root:
        return None
    record = shared.load("refs", ref_id)
    if record is not None:
        store.write("refs", ref_id, record, shared.per_item("refs", ref_id))
    return record


def _reference_rows(store: Store, ref_id: str) -> list[dict]:
    """Per-item rows of a reference record: from ``store``, or from the shared reference store where ``store``
    holds no copy (a data-parallel process other than 0 never writes one)."""
    if (store.folder("refs", ref_id) / "per_item.jsonl").exists():
        return store.per_item("refs", ref_id)
    return shared_references().per_item("refs", ref_id)


def get_references(data: TaskData, store: Store, preset: ModelPreset | None = None,
                   replicate: int = 0) -> References:
    """Build (or load) tokenizer, target and oracle (the task's tiny models of replicate ``replicate``, or
    ``preset``'s checkpoints), and their evaluation records."""
    pin_threads()
    if preset is None:
        tokenizer = get_tokenizer(data)
        built: dict[str, BuiltModel | PresetModel] = {kind: get_model(data, kind, replicate=replicate)
                                                      for kind in REFERENCE_KINDS}
    else:
        tokenizer = preset_tokenizer(preset)
        built = dict(preset_models(preset, data, tokenizer))
    records: dict[str, dict] = {}
    oracle_per_item: dict = {}
    for kind in ("oracle", "target"):  # the oracle first: the target's forget quality is measured against it
        ref_id = reference_id(data, kind, preset, replicate)
        record = store.load("refs", ref_id)
        if record is None:
            record = _copy_shared_reference(store, ref_id)
        if kind == "target" or record is not None:
            oracle_per_item = oracle_per_item or per_item_from_rows(
                _reference_rows(store, reference_id(data, "oracle", preset, replicate)))
        if record is None:
            start = time.perf_counter()
            oracle = SELF if kind == "oracle" else oracle_per_item
            model = built[kind].load()
            evaluation = evaluate(model, tokenizer, data, oracle, gradnorm=True)
            record = {"schema_version": SCHEMA_VERSION, "record_id": ref_id, "kind": "reference", "status": "ok",
                      "error": None,
                      "spec": {"task": data.config.ref, "split": data.split, "model": kind,
                               "model_key": (model_key(data, kind, replicate) if preset is None
                                             else built[kind].location),
                               **({"replicate": replicate, "weights": model_identity(data, kind, replicate)}
                                  if preset is None else {}),
                               "task_digest": data.config.digest,
                               **({"preset": preset.name} if preset is not None else {})},
                      "metrics": {**metrics_dict(evaluation), **external_metrics(model, tokenizer, data)},
                      "build": built[kind].info,
                      "timings": {"eval_seconds": round(time.perf_counter() - start, 3)}, "env": run_env()}
            store.write("refs", ref_id, record, evaluation.rows())
            shared_references().write("refs", ref_id, record, evaluation.rows())
            if kind == "oracle":
                oracle_per_item = per_item_from_rows(evaluation.rows())
        records[kind] = record
    return References(tokenizer, built["target"], built["oracle"], records, oracle_per_item)


def request_subjects(data: TaskData) -> list[str]:
    """The subject of each item of ``data.unlearning_pairs("forget")``: its person (QA items, then texts), or with
    a forget corpus the document's ``person`` (MUSE's sustainability fold), or the document itself."""
    if data.forget_corpus is not None:
        corpus = data.forget_corpus
        return list(corpus["person"]) if "person" in corpus.column_names else list(corpus["id"])
    return list(data.forget["person"]) + (list(data.forget_bio["person"]) if data.forget_bio is not None else [])


def request_groups(data: TaskData, n: int) -> list[list[int]]:
    """Indices into ``data.unlearning_pairs("forget")`` of each of ``n`` sequential forget requests: the forget
    subjects (persons) in their split order, cut into ``n`` consecutive groups as equal as possible; a request
    covers every QA item and text of its subjects. With a forget corpus the subjects are its documents' ``person``
    (MUSE's sustainability folds), or each document alone when the corpus has no such column."""
    persons = request_subjects(data)
    subjects = list(dict.fromkeys(persons))
    if n > len(subjects):
        raise ValueError(f"requests: {n} sequential requests but the forget split has {len(subjects)} subjects")
    bounds = [round(i * len(subjects) / n) for i in range(n + 1)]
    group_of = {person: g for g in range(n) for person in subjects[bounds[g]: bounds[g + 1]]}
    return [[i for i, person in enumerate(persons) if group_of[person] == g] for g in range(n)]


SEQUENTIAL_METRICS = ("forget/es", "forget/prob", "forget/knowmem", "forget_bio/verbmem", "retain/es",
                      "retain/knowmem", "world_facts/prob", "model_utility", "forget_quality")


def _sequential(spec: RunSpec, data: TaskData, model, method, forget, retain, idk, reference, tokenizer,
                oracle_per_item) -> tuple[TrainResult, list[dict], list[str], Evaluation]:
    """MUSE sustainability: unlearn request after request on the same model, each with the full ``spec.budget``
    (a fresh optimizer per request; the reference model, where the method has one, stays the original target),
    and record the metrics after each. ``requested/forget/es`` is the forget ES over the subjects requested so
    far, ``pending/forget/es`` over those not yet requested (how much forgetting spills over)."""
    groups = request_groups(data, spec.requests)
    forget_person = dict(zip(data.forget["id"], data.forget["person"]))
    persons = request_subjects(data)
    total = TrainResult(steps=0)
    history: list[dict] = []
    exceeded: list[str] = []
    evaluation = None
    for r, rows in enumerate(groups):
        part = unlearn(model, method, [forget[i] for i in rows], retain, spec.budget, spec.seed + r,
                       tokenizer.pad_token_id, reference, idk=[idk[i] for i in rows] if idk is not None else None)
        total.steps += part.steps
        total.losses += part.losses
        total.diagnostics += part.diagnostics
        total.seconds += part.seconds
        for name in ("optimizer_steps", "forget_examples", "retain_examples", "forward_passes",
                     "reference_forward_passes"):
            setattr(total.use, name, getattr(total.use, name) + getattr(part.use, name))
        # the last request's evaluation is the run's final one, with the GradNorm MIA like any final evaluation
        evaluation = evaluate(model, tokenizer, data, oracle_per_item, gradnorm=r == len(groups) - 1)
        requested = {persons[i] for g in groups[: r + 1] for i in g}
        es = evaluation.per_item["forget"]["es"]
        mask = np.array([forget_person[i] in requested for i in evaluation.ids["forget"]])
        entry = {"request": r + 1, "subjects": sorted({persons[i] for i in rows}), "steps": part.steps,
                 "exceeded": part.use.exceeded(spec.budget),
                 "metrics": {k: evaluation.metrics[k].value for k in SEQUENTIAL_METRICS if k in evaluation.metrics}}
        entry["metrics"]["requested/forget/es"] = float(es[mask].mean()) if mask.any() else None
        entry["metrics"]["pending/forget/es"] = float(es[~mask].mean()) if (~mask).any() else None
        history.append(entry)
        exceeded += [f"request {r + 1}: {reason}" for reason in entry["exceeded"]]
    assert evaluation is not None
    return total, history, exceeded, evaluation


@contextmanager
def gradient_checkpointing(model: torch.nn.Module) -> Iterator[None]:
    """Recompute activations in the backward pass while training when the runtime asks for it (7B models on one
    GPU); evaluation afterwards uses the KV cache as usual."""
    if not runtime().gradient_checkpointing or not hasattr(model, "gradient_checkpointing_enable"):
        yield
        return
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    try:
        yield
    finally:
        model.gradient_checkpointing_disable()
        model.config.use_cache = True


def spec_preset(spec: RunSpec) -> ModelPreset | None:
    return load_preset(spec.model["preset"]) if spec.model.get("kind") == "preset" else None


def execute(spec: RunSpec, store: Store, reuse: bool = True) -> dict:
    """Run ``spec`` unless its record exists; store and return the record (status ok or failed). The run computes
    on ``bench.device.select_device()`` in its model preset's precision; the record names the device."""
    if reuse:
        existing = store.load("runs", spec.run_id)
        if existing is not None:
            return existing
    preset = spec_preset(spec)
    pin_threads()  # the same thread count on every entry point (bench.numerics)
    with use_runtime(runtime_for(preset)) as rt:
        reset_peak_memory(rt.device)
        return _execute(spec, store, preset)


def _execute(spec: RunSpec, store: Store, preset: ModelPreset | None) -> dict:
    run_id = spec.run_id
    timings: dict[str, float] = {}
    record: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "kind": "run",
                              "spec": spec.to_dict(), "label": spec.label,
                              "env": run_env(), "metrics": {}, "train": None, "error": None}
    per_item: list[dict] = []
    extra: dict[str, str] = {}
    start = time.perf_counter()
    try:
        data = load_task(spec.task, spec.split)
        if preset is not None:
            apply_to_task(preset, data)
        refs = get_references(data, store, preset, replicate=spec.seed)
        timings["references_seconds"] = round(time.perf_counter() - start, 3)
        method = make_method(spec.method, spec.hparams)
        tokenizer = refs.tokenizer
        template = data.config.prompt_template
        forget_pairs, retain_pairs = data.unlearning_pairs("forget"), data.unlearning_pairs("retain")
        forget = [encode_qa(tokenizer, template, q, a, add_eos=True) for q, a, _ in forget_pairs]
        retain = [encode_qa(tokenizer, template, q, a, add_eos=True) for q, a, _ in retain_pairs]
        idk = ([encode_qa(tokenizer, template, q, idk, add_eos=True) for q, _, idk in forget_pairs]
               if method.needs_idk else None)
        model = refs.target.load()
        target_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if spec.adapter is not None:
            from bench.adapters import parameter_counts, wrap

            model = wrap(model, spec.adapter)
            record["adapter"] = {**asdict(spec.adapter), **parameter_counts(model)}
        reference = ReferenceModel(refs.target.load()) if method.needs_reference else None
        def full_metrics(m: torch.nn.Module) -> dict[str, dict]:
            """The calibrated (mixed) model's metrics: every QA split; VerbMem's text splits are reported raw."""
            return metrics_dict(evaluate(m, tokenizer, data, refs.oracle_per_item, text=False))

        control = Controller(spec.control, data, tokenizer, refs.records["target"], target_state, full_metrics)
        evaluation: Evaluation | None = None
        if spec.requests > 1:
            with gradient_checkpointing(model):
                trained, record["sequential"], exceeded, evaluation = _sequential(
                    spec, data, model, method, forget, retain, idk, reference, tokenizer, refs.oracle_per_item)
        else:
            recorder = (GEffectRecorder(method, data, tokenizer, reference, every=spec.budget.callback_every,
                                        total_steps=spec.budget.steps) if spec.budget.callback_every else None)
            callbacks = [*control.callbacks(), *([recorder] if recorder else [])]
            with gradient_checkpointing(model):
                trained = unlearn(model, method, forget, retain, spec.budget, spec.seed, tokenizer.pad_token_id,
                                  reference, callbacks=callbacks, idk=idk)
            exceeded = trained.use.exceeded(spec.budget)
            if recorder is not None:
                record["geffect"] = recorder.summary(model.config.num_hidden_layers)
                extra["geffect.jsonl"] = recorder.jsonl()
                timings["geffect_seconds"] = round(recorder.seconds, 3)
        if spec.adapter is not None:
            from bench.adapters import merge

            model = merge(model)
        timings["train_seconds"] = round(trained.seconds, 3)
        record["train"] = {"steps": trained.steps, "losses": trained.losses,
                           "final_diagnostics": trained.diagnostics[-1] if trained.diagnostics else {}}
        record["budget"] = {"declared": asdict(spec.budget), "used": asdict(trained.use), "exceeded": exceeded,
                            "per_request": spec.requests > 1}
        eval_start = time.perf_counter()
        if evaluation is None:  # a sequential run's last request already evaluated the final model
            evaluation = evaluate(model, tokenizer, data, refs.oracle_per_item, gradnorm=True)
        timings["eval_seconds"] = round(time.perf_counter() - eval_start, 3)
        record["metrics"] = metrics_dict(evaluation)
        record["metrics"].update(external_metrics(model, tokenizer, data, timings))
        per_item = evaluation.rows()
        control_start = time.perf_counter()
        record["control"] = control.finish(model, evaluation)
        timings["control_seconds"] = round(time.perf_counter() - control_start, 3)
        record["status"] = "budget_exceeded" if exceeded else "ok"
        if exceeded:
            record["error"] = {"type": "BudgetExceeded", "message": "; ".join(exceeded)}
    except NonFiniteLossError as exc:
        record.update(status="failed", error={"type": "NonFiniteLoss", "message": str(exc), "step": exc.step})
    except (RuntimeError, ValueError, ArithmeticError, OSError) as exc:
        record.update(status="failed", error={"type": type(exc).__name__, "message": str(exc),
                                              "traceback": traceback.format_exc(limit=6)})
    timings["total_seconds"] = round(time.perf_counter() - start, 3)
    record["timings"] = timings
    peak = peak_memory_gib(runtime().device)
    if peak is not None:  # references, training, evaluation and control of this run (env: not part of its evidence)
        record["env"]["cuda_peak_memory_gib"] = peak
    store.write("runs", run_id, record, per_item, extra)
    return record
