"""Contract: every registered method (and a plug-in from a test package) runs 3 optimizer steps of the smoke tier on
the tiny model with finite losses, changes the model, and gets the frozen reference only if it declares a need."""

from __future__ import annotations

import math

import pytest
import torch

from bench.data.alternates import alternate_answers
from bench.data.tokenize import encode_qa
from bench.methods.base import ReferenceModel, make_method
from bench.models.tiny import get_model, get_tokenizer
from bench.registry import METHODS
from bench.run.train import unlearn
from bench.specs.tiers import smallest_tier

from .conftest import PLUGINS

BROKEN_ON_PURPOSE = {"nan_loss", "raise_loss"}


def contract_methods() -> list[str]:
    for name in ("confidence_ascent", "random_labels"):
        if name not in METHODS:
            METHODS.load_plugin_file(str(PLUGINS / f"{name}.py"))
    return sorted(set(METHODS.names()) - BROKEN_ON_PURPOSE)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


@pytest.fixture(scope="module")
def encoded(mini_data):
    tokenizer = get_tokenizer(mini_data)
    template = mini_data.config.prompt_template

    def encode(ds, column):
        return [encode_qa(tokenizer, template, q, a, add_eos=True) for q, a in zip(ds["question"], ds[column])]

    alternates = mini_data.forget.add_column("alternate", alternate_answers(mini_data)[:len(mini_data.forget)])
    return (tokenizer, encode(mini_data.forget, "answer"), encode(mini_data.retain, "answer"),
            encode(mini_data.forget, "idk_answer"), encode(alternates, "alternate"))


class CountingReference(ReferenceModel):
    made = 0

    def __init__(self, model):
        super().__init__(model)
        CountingReference.made += 1


@pytest.mark.parametrize("name", contract_methods())
def test_three_smoke_steps_with_finite_loss(name: str, mini_data, encoded) -> None:
    tokenizer, forget, retain, idk, alternate = encoded
    method = make_method(name)
    target = get_model(mini_data, "target")
    model = target.load()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    reference = ReferenceModel(target.load()) if method.needs_reference else None
    budget = smallest_tier()
    assert budget.tier == "smoke" and budget.steps == 3
    result = unlearn(model, method, forget, retain, budget, seed=0, pad_id=tokenizer.pad_token_id,
                     reference=reference, idk=idk, alternate=alternate)
    assert result.steps == 3 and len(result.losses) == 3
    assert all(math.isfinite(v) for v in result.losses), result.losses
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed, f"{name} did not change the model"
    if reference is not None:
        assert reference.forward_passes > 0, f"{name} declares needs_reference but never used it"


@pytest.mark.parametrize("name", ["ga", "simnpo", "ceu", "npo", "rmu"])
def test_the_runner_builds_the_reference_only_when_declared(name: str, store, monkeypatch) -> None:
    """open-unlearning allocates a reference for some methods that never read it; here the runner builds one
    exactly when the method (or its regulariser) declares it."""
    import bench.run.execute
    from bench.run.execute import execute
    from bench.run.runspec import make_run_spec

    from .conftest import MINI

    CountingReference.made = 0
    monkeypatch.setattr(bench.run.execute, "ReferenceModel", CountingReference)
    record = execute(make_run_spec(MINI, "forget10", name, {}, smallest_tier(), seed=0), store)
    assert record.ok, record.error
    assert CountingReference.made == int(make_method(name).needs_reference)
