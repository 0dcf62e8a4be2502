"""RunSpec -> record. Idempotent: a stored record is returned as is; a failure is stored with its error.

A run loads the task and its references (``bench.run.references``), unlearns with the method under the budget
(``bench.run.train``, or request after request: ``bench.run.sequential``) while the callbacks record the G-effect and
the control checkpoints, evaluates the final model, calibrates it (``bench.run.controller``) and writes the record
(``bench.run.record``) atomically into the store.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bench.attacks.base import AttackContext, attack_metrics
from bench.data.alternates import alternate_answers
from bench.data.tasks import TaskData, load_task
from bench.data.tokenize import Encoded, encode_qa
from bench.geffect.callback import GEffectRecorder
from bench.methods.base import Method, ReferenceModel, make_method
from bench.metrics.evaluate import Evaluation, evaluate, shared_draws
from bench.models.adapters import merge, parameter_counts, wrap
from bench.models.presets import ModelPreset, apply_to_task
from bench.run.controller import Controller
from bench.run.keep import keep_models
from bench.run.origin import method_origin
from bench.run.record import external_metrics, metrics_dict, run_env
from bench.run.references import References, get_references
from bench.run.runspec import runtime_for, spec_preset
from bench.run.sequential import run_sequential
from bench.run.train import NonFiniteLossError, TrainResult, unlearn
from bench.runtime.device import peak_memory_gib, reset_peak_memory, runtime, use_runtime
from bench.runtime.keys import ATTACK_MARK
from bench.runtime.numerics import pin_threads
from bench.runtime.progress import slow_step
from bench.runtime.records import RunRecord
from bench.runtime.sections import BudgetUse, GEffectSummary, MethodOrigin, MetricEntry, RecordError, Training
from bench.runtime.store import GEFFECT_FILE, Store
from bench.specs.run import RunSpec


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


def execute(spec: RunSpec, store: Store, reuse: bool = True, submitted: MethodOrigin | None = None,
            keep_models: bool = False) -> RunRecord:
    """Run ``spec`` unless its record exists; store and return the record (status ok or failed). The run computes
    on ``bench.runtime.device.select_device()`` in its model preset's precision; the record names the device.
    ``submitted``: the facts of the board's submitted entry the run is for (``bench.run.origin.entry_origin``),
    which the record's ``origin`` carries (outside the run id and the evidence). ``keep_models``: also save its
    final and calibrated models next to the record (``bench.run.keep``); a stored successful record without them
    is run again to make them."""
    if reuse:
        existing = store.load_run(spec.run_id)
        if existing is not None and not (keep_models and existing.status == "ok"
                                         and not store.kept_models(spec.run_id)):
            return existing
    preset = spec_preset(spec)
    pin_threads()  # the same thread count on every entry point (bench.runtime.numerics)
    with use_runtime(runtime_for(preset)) as rt:
        reset_peak_memory(rt.device)
        return _execute(spec, store, preset, submitted, keep_models)


@dataclass
class _Unlearned:
    """What training left for scoring: the final model (adapters merged), its controller (calibration and the
    trade-off curve), the training result, the budget overruns, and the final evaluation when the run already made
    it (a sequential run's last request)."""

    model: torch.nn.Module
    control: Controller
    trained: TrainResult
    exceeded: list[str]
    evaluation: Evaluation | None


def encoded_pairs(data: TaskData, tokenizer: Any, method: Method) -> tuple[list[Encoded], list[Encoded],
                                                                           list[Encoded] | None]:
    """The forget and retain QA pairs encoded with EOS, and the forget questions with their IDK answers when the
    method needs them."""
    template = data.config.prompt_template
    forget_pairs, retain_pairs = data.unlearning_pairs("forget"), data.unlearning_pairs("retain")
    forget = [encode_qa(tokenizer, template, q, a, add_eos=True) for q, a, _ in forget_pairs]
    retain = [encode_qa(tokenizer, template, q, a, add_eos=True) for q, a, _ in retain_pairs]
    idk = ([encode_qa(tokenizer, template, q, idk, add_eos=True) for q, _, idk in forget_pairs]
           if method.needs_idk else None)
    return forget, retain, idk


def encoded_alternates(data: TaskData, tokenizer: Any, method: Method) -> list[Encoded] | None:
    """The forget questions with their alternate answers (``bench.data.alternates``), encoded with EOS and aligned
    with the forget pairs, when the method needs them."""
    if not method.needs_alternate:
        return None
    template = data.config.prompt_template
    return [encode_qa(tokenizer, template, q, alternate, add_eos=True)
            for (q, _, _), alternate in zip(data.unlearning_pairs("forget"), alternate_answers(data), strict=True)]


def _unlearn(spec: RunSpec, data: TaskData, refs: References, method: Method, parts: dict[str, Any],
             files: dict[str, str], timings: dict[str, float]) -> _Unlearned:
    """Unlearn the target under the spec's budget (request after request for a sequential run) while the control
    and G-effect callbacks record; the adapter, sequential and G-effect sections go into ``parts``, the G-effect
    file into ``files`` and its time into ``timings``."""
    tokenizer = refs.tokenizer
    forget, retain, idk = encoded_pairs(data, tokenizer, method)
    alternate = encoded_alternates(data, tokenizer, method)
    model = refs.target.load()
    target_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if spec.adapter is not None:
        model = wrap(model, spec.adapter)
        parts["extra"]["adapter"] = {**asdict(spec.adapter), **parameter_counts(model)}
    reference = ReferenceModel(refs.target.load()) if method.needs_reference else None

    last: dict[str, Evaluation] = {}

    def full_metrics(m: torch.nn.Module) -> dict[str, MetricEntry]:
        """The calibrated (mixed) model's metrics: every QA split; VerbMem's text splits are reported raw."""
        last["calibrated"] = evaluate(m, tokenizer, data, refs.oracle_per_item, text=False)
        return metrics_dict(last["calibrated"])

    def attacked(m: torch.nn.Module, plain: dict[str, MetricEntry]) -> dict[str, MetricEntry]:
        """The board's attacks on the calibrated model (``plain``: its metrics from ``full_metrics``)."""
        ev = last["calibrated"]
        return attack_metrics(m, attack_context(refs, data), run_attacks(spec), plain,
                              shared_draws(ev.per_item, ev.ids))

    control = Controller(spec.control, data, tokenizer, refs.records["target"], target_state, full_metrics,
                         attacked if run_attacks(spec) else None)
    evaluation: Evaluation | None = None
    if spec.requests > 1:
        with gradient_checkpointing(model):
            trained, parts["extra"]["sequential"], exceeded, evaluation = run_sequential(
                spec, data, model, method, forget, retain, idk, reference, tokenizer, refs.oracle_per_item,
                alternate=alternate)
    else:
        recorder = (GEffectRecorder(method, data, tokenizer, reference, every=spec.budget.callback_every,
                                    total_steps=spec.budget.steps) if spec.budget.callback_every else None)
        callbacks = [*control.callbacks(), *([recorder] if recorder else [])]
        with gradient_checkpointing(model):
            trained = unlearn(model, method, forget, retain, spec.budget, spec.seed, tokenizer.pad_token_id,
                              reference, callbacks=callbacks, idk=idk, alternate=alternate)
        exceeded = trained.use.exceeded(spec.budget)
        if recorder is not None:
            recorder.finish(model)  # R(D) of the trained model: the end point of the measured change
            parts["geffect"] = GEffectSummary.from_dict(recorder.summary(model.config.num_hidden_layers))
            files[GEFFECT_FILE] = recorder.jsonl()
            timings["geffect_seconds"] = round(recorder.seconds, 3)
    if spec.adapter is not None:
        model = merge(model)
    return _Unlearned(model, control, trained, exceeded, evaluation)


def _evaluate(spec: RunSpec, data: TaskData, refs: References, done: _Unlearned, parts: dict[str, Any],
              timings: dict[str, float]) -> Evaluation:
    """Fill ``parts`` with the training summary, the budget used and the final model's metrics (external
    evaluations included); returns the final model's evaluation."""
    trained = done.trained
    timings["train_seconds"] = round(trained.seconds, 3)
    parts["train"] = Training(steps=trained.steps, losses=trained.losses,
                              final_diagnostics=trained.diagnostics[-1] if trained.diagnostics else {})
    parts["budget"] = BudgetUse(declared=asdict(spec.budget), used=asdict(trained.use), exceeded=done.exceeded,
                                per_request=spec.requests > 1)
    eval_start = time.perf_counter()
    evaluation = done.evaluation
    if evaluation is None:  # a sequential run's last request already evaluated the final model
        evaluation = evaluate(done.model, refs.tokenizer, data, refs.oracle_per_item, gradnorm=True)
    timings["eval_seconds"] = round(time.perf_counter() - eval_start, 3)
    plain = metrics_dict(evaluation)
    attacked: dict[str, MetricEntry] = {}
    if run_attacks(spec):
        attack_start = time.perf_counter()
        with slow_step(f"{spec.label}: attacks"):
            attacked = attack_metrics(done.model, attack_context(refs, data), run_attacks(spec), plain,
                                      shared_draws(evaluation.per_item, evaluation.ids), timings)
        timings["attacks_seconds"] = round(time.perf_counter() - attack_start, 3)
    parts["metrics"] = {**plain, **external_metrics(done.model, refs.tokenizer, data, timings), **attacked}
    return evaluation


def run_attacks(spec: RunSpec) -> tuple[str, ...]:
    """The attacks a run's spec names (``model["attacks"]``, set from its board: ``bench.attacks``)."""
    return tuple(spec.model.get("attacks", {}))


def attack_context(refs: References, data: TaskData) -> AttackContext:
    return AttackContext(refs.tokenizer, data, refs.target.load, refs.oracle.load)


def _calibrate(done: _Unlearned, evaluation: Evaluation, parts: dict[str, Any],
               timings: dict[str, float]) -> tuple[str, RecordError | None]:
    """Fill ``parts`` with the final model's calibration (``control``); returns the run status and, for a budget
    overrun, its error."""
    control_start = time.perf_counter()
    raw_attacks = {key: entry for key, entry in parts["metrics"].items() if ATTACK_MARK in key}
    parts["control"] = done.control.finish(done.model, evaluation, raw_attacks)
    timings["control_seconds"] = round(time.perf_counter() - control_start, 3)
    if done.exceeded:
        return "budget_exceeded", RecordError("BudgetExceeded", "; ".join(done.exceeded))
    return "ok", None


def _execute(spec: RunSpec, store: Store, preset: ModelPreset | None, submitted: MethodOrigin | None,
             keep: bool = False) -> RunRecord:
    """Run ``spec`` (references, unlearning, scoring, calibration) and store its record; an error that stops the
    run is recorded as a failed status with its type and message (and the step of a non-finite loss). ``keep``:
    save the final and calibrated models before the record (``bench.run.keep``)."""
    timings: dict[str, float] = {}
    env = run_env()
    parts: dict[str, Any] = {"extra": {}}  # the record's sections, as far as the run got
    status, error = "failed", None
    per_item: list[dict] = []
    files: dict[str, str] = {}  # written beside the record
    start = time.perf_counter()
    try:
        data = load_task(spec.task, spec.split)
        if preset is not None:
            apply_to_task(preset, data)
        with slow_step(f"{spec.label}: references"):
            refs = get_references(data, store, preset, replicate=spec.seed, attacks=run_attacks(spec))
        timings["references_seconds"] = round(time.perf_counter() - start, 3)
        method = make_method(spec.method, spec.hparams)
        with slow_step(f"{spec.label}: training"):
            done = _unlearn(spec, data, refs, method, parts, files, timings)
        with slow_step(f"{spec.label}: evaluation"):
            evaluation = _evaluate(spec, data, refs, done, parts, timings)
        per_item = evaluation.rows()
        with slow_step(f"{spec.label}: calibration"):
            status, error = _calibrate(done, evaluation, parts, timings)
        if keep:
            keep_start = time.perf_counter()
            calibration = parts["control"].calibration
            keep_models(store, spec.run_id, done.model, refs.tokenizer, done.control.target_state,
                        calibration.alpha if calibration is not None else None)
            timings["keep_models_seconds"] = round(time.perf_counter() - keep_start, 3)
    except NonFiniteLossError as exc:
        error = RecordError("NonFiniteLoss", str(exc), step=exc.step)
    except (RuntimeError, ValueError, ArithmeticError, OSError) as exc:
        error = RecordError(type(exc).__name__, str(exc), traceback=traceback.format_exc(limit=6))
    timings["total_seconds"] = round(time.perf_counter() - start, 3)
    peak = peak_memory_gib(runtime().device)
    if peak is not None:  # references, training, evaluation and control of this run (env: not part of its evidence)
        env["cuda_peak_memory_gib"] = peak
    record = RunRecord(id=spec.run_id, spec=spec.to_dict(), status=status, label=spec.label, error=error,
                       timings=timings, env=env, origin=method_origin(spec.method, submitted), **parts)
    store.write(record, per_item, files)
    return record
