"""Building a RunSpec: validate a (task, split, method, hyper-parameters, budget, control) and pin every default,
model identity and code version into it (its content hash is the run id); the device and precision a spec runs
under.

The versions a run id carries: the method class's ``version`` (``RunSpec.method_version``), the evaluation
engine's ``EVAL_VERSION`` and the versions of the metrics the task evaluates (``model["eval_version"]``,
``model["metric_versions"]``, ``bench.metrics.identity``). Bumping one of them changes exactly the ids of the
records it can change: a method's, its cells; a metric's, every run and reference of the tasks that evaluate it."""

from __future__ import annotations

from typing import Any

from bench.data.alternates import ALTERNATE_FAMILIES
from bench.data.tasks import check_forget_set, load_task_config, read_task_config
from bench.methods.base import full_hparams, make_method
from bench.models.presets import ModelPreset, load_preset, missing_oracle
from bench.models.tiny import TaskSplit, model_identity, model_split
from bench.run.references import REFERENCE_KINDS, evaluation_identity
from bench.runtime.device import Runtime, select_device
from bench.specs.mapping import SpecError, content_hash
from bench.specs.run import AdapterSpec, Budget, ControlSpec, RunSpec


def runtime_for(preset: ModelPreset | None) -> Runtime:
    """The run's device (``bench.runtime.device.select_device``) and the preset's precision settings."""
    device = select_device()
    if preset is None:
        return Runtime(device)
    # bf16 autocast pays on GPUs; on most CPUs it is slower than fp32, so a CPU run computes in the weights' dtype
    autocast = preset.autocast if device.type == "cuda" else ""
    return Runtime(device, autocast, preset.gradient_checkpointing and device.type == "cuda")


def make_run_spec(task: str, split: str, method: str, params: dict[str, Any], budget: Budget, seed: int,
                  source: str = "", path: str = "", control: ControlSpec | None = None,
                  requests: int = 1, adapter: AdapterSpec | None = None, model: str | None = None,
                  check_data: bool = True, attacks: tuple[str, ...] = ()) -> RunSpec:
    """Validate the method name and hyper-parameters (SpecError / RegistryError) and pin every default. Without
    ``check_data`` the task's family and forget set are not checked (nothing is imported or loaded for them): the
    spec of a cell whose stored record a board rebuild reads. ``attacks`` (names, ``bench.attacks``) run on the
    final, calibrated and reference models; their versions enter the id (``evaluation_identity``)."""
    config = load_task_config(task) if check_data else read_task_config(task)
    if adapter is not None and control is not None and control.kind == "early_stop":
        raise SpecError(f"{source or 'run'}: adapter: LoRA runs support control none or mixing, not early_stop")
    if requests > 1 and control is not None and control.kind == "early_stop":
        raise SpecError(f"{source or 'run'}: requests: sequential requests support control none or mixing, "
                        f"not early_stop")
    if split not in config.forget_splits:
        raise SpecError(f"{source or 'run'}: split: task {config.name} has no forget split {split!r} "
                        f"(known: {', '.join(config.forget_splits)})")
    instance = make_method(method, params, source, path)
    if instance.needs_alternate and config.family not in ALTERNATE_FAMILIES:
        raise SpecError(f"{source or 'run'}: {path + '.' if path else ''}method: {method} needs alternate answers to "
                        f"the forget questions, which task {config.name} (family {config.family}) does not supply "
                        f"(families that do: {', '.join(ALTERNATE_FAMILIES)})")
    if check_data:
        check_forget_set(task, split, config.digest)  # an empty forget set stops the board here (offline tasks)
    if adapter is not None and not instance.supports_adapter:
        raise SpecError(f"{source or 'run'}: adapter: method {method} does not support LoRA adapters")
    if adapter is not None and requests > 1:
        raise SpecError(f"{source or 'run'}: adapter: sequential requests with a LoRA adapter are not supported")
    if model:
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
    return RunSpec(task=config.ref, split=split, method=method, method_version=str(type(instance).version),
                   hparams=full_hparams(instance),
                   model={**model_fields, "task_digest": config.digest, **evaluation_identity(config, attacks)},
                   budget=budget,
                   seed=seed, control=control or ControlSpec(), requests=requests, adapter=adapter)


def spec_preset(spec: RunSpec) -> ModelPreset | None:
    return load_preset(spec.model["preset"]) if spec.model.get("kind") == "preset" else None
