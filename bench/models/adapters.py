"""LoRA adapters as a run option for every method (``RunSpec.adapter``), through ``peft``.

``wrap`` puts a fresh LoRA adapter on the target model (B = 0, so the wrapped model computes exactly the target's
function at step 0) and freezes every base weight; the methods train the adapter as they would train the model.
``merge`` folds W + (alpha / r) B A back into plain weights, so everything after training (evaluation, calibration
by mixing with the target's weights, relearning, storage) sees an ordinary model with the target's parameter names.
"""

from __future__ import annotations

import torch

from bench.specs.run import AdapterSpec


def wrap(model: torch.nn.Module, spec: AdapterSpec) -> torch.nn.Module:
    """The model with a LoRA adapter on ``spec.target_modules``; only the adapter's parameters require grad."""
    from peft import LoraConfig, get_peft_model  # optional at run time: only LoRA runs (RunSpec.adapter) load peft

    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                        target_modules=list(spec.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def is_adapted(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config")


def freeze_base(model: torch.nn.Module) -> None:
    """Keep only adapter parameters trainable (a method's ``prepare`` may have unfrozen base weights by name, as RMU
    does for its layers: on an adapted model it then selects those layers' adapters)."""
    for name, param in model.named_parameters():
        if "lora_" not in name:
            param.requires_grad_(False)


def merge(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model with the adapter folded into its weights, every parameter trainable again (as a loaded
    model's are: GradNorm and the relearning attack differentiate through them)."""
    if not is_adapted(model):
        return model
    merged = model.merge_and_unload()
    for param in merged.parameters():
        param.requires_grad_(True)
    return merged


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable (adapter) and total parameters of an adapted model."""
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    total = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    return {"trainable_params": trainable, "base_params": total}
