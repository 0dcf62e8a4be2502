"""Kept models: a run's final and calibrated models saved next to its record, on request (``keep_models``).

``runs/<id>/models/final/`` is the unlearned model θ_u as evaluated (adapters merged) and
``runs/<id>/models/calibrated/`` the calibrated model θ(α*) = (1 − α*)·θ_target + α*·θ_u, mixed with the same
``torch.lerp`` as the calibration (``bench.run.calibrate.MixedModel``), so evaluating it gives the record's
``calibrated/…`` numbers. Each is a ``save_pretrained`` folder with the tokenizer, loadable with
``AutoModelForCausalLM.from_pretrained`` and by ``ubench geffect --checkpoint``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.runtime.store import Store

KINDS = ("final", "calibrated")


def calibrated_state(model: torch.nn.Module, target_state: dict[str, torch.Tensor],
                     alpha: float) -> dict[str, torch.Tensor]:
    """θ(α) = lerp(θ_target, θ_u, α) for every floating-point tensor of ``model`` (θ_u) that differs from the
    target's; every other tensor as in ``model``. A new state dict: the model is not changed."""
    out = {}
    for name, value in model.state_dict().items():
        target = target_state[name].to(value.device)
        mix = value.is_floating_point() and not torch.equal(target, value)
        out[name] = torch.lerp(target, value, alpha) if mix else value.detach().clone()
    return out


def keep_models(store: Store, run_id: str, model: torch.nn.Module, tokenizer: Any,
                target_state: dict[str, torch.Tensor], alpha: float | None) -> dict[str, Path]:
    """Save the final model and the calibrated model at ``alpha`` (the final one again when the run has no
    calibration: ``alpha`` None) into the run's ``models/`` folder; returns the folders by kind."""
    def save(state: dict[str, torch.Tensor] | None):
        def fill(folder: Path) -> None:
            model.save_pretrained(folder, state_dict=state)
            tokenizer.save_pretrained(folder)
        return fill

    calibrated = None if alpha is None or alpha == 1.0 else calibrated_state(model, target_state, alpha)
    return {"final": store.keep_model(run_id, "final", save(None)),
            "calibrated": store.keep_model(run_id, "calibrated", save(calibrated))}
