"""LoRA adapters as a run option: validation, unchanged ids for full fine-tuning, the recorded parameter counts, and
the same method ranking direction as full fine-tuning on the tiny model."""

from __future__ import annotations

import pytest

from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.specs.mapping import SpecError
from bench.specs.run import AdapterSpec, Budget, ControlSpec
from tests.conftest import MINI

FULL = Budget(steps=8, lr=5e-4, batch_size=8)
LORA = Budget(steps=8, lr=5e-3, batch_size=8)  # adapters start at B = 0 and need a larger step, as usual for LoRA
ADAPTER = AdapterSpec(r=8, alpha=16)


def test_adapter_spec_validation_and_ids() -> None:
    with pytest.raises(ValueError, match="kind: only 'lora'"):
        AdapterSpec(kind="ia3")
    with pytest.raises(ValueError, match="r and alpha"):
        AdapterSpec(r=0)
    full = make_run_spec(MINI, "forget10", "ga", {}, FULL, seed=0)
    lora = make_run_spec(MINI, "forget10", "ga", {}, FULL, seed=0, adapter=ADAPTER)
    assert "adapter" not in full.to_dict()  # full fine-tuning runs keep the ids they had before adapters existed
    assert lora.to_dict()["adapter"]["r"] == 8 and lora.run_id != full.run_id
    with pytest.raises(SpecError, match="adapter: method task_vector does not support LoRA adapters"):
        make_run_spec(MINI, "forget10", "task_vector", {}, FULL, seed=0, adapter=ADAPTER)
    with pytest.raises(SpecError, match="adapter: LoRA runs support control none or mixing"):
        make_run_spec(MINI, "forget10", "ga", {}, FULL, seed=0, adapter=ADAPTER,
                      control=ControlSpec(kind="early_stop"))


def test_lora_records_its_parameters_and_ranks_methods_like_full_fine_tuning(store) -> None:
    """GA (aggressive ascent) and IdkPO (preference towards "I don't know") under the same budget: GA removes more
    forget knowledge than IdkPO with full fine-tuning, and with a LoRA adapter too."""
    es = {}
    for mode, budget, adapter in (("full", FULL, None), ("lora", LORA, ADAPTER)):
        for method in ("ga", "idkpo"):
            record = execute(make_run_spec(MINI, "forget10", method, {}, budget, seed=0, adapter=adapter), store)
            assert record.ok, record.error
            es[mode, method] = record.metrics["forget/es"].value
            if adapter is not None:
                counts = record.extra["adapter"]
                assert 0 < counts["trainable_params"] < 0.2 * counts["base_params"]
                assert counts["r"] == 8
            else:
                assert "adapter" not in record.extra
    assert es["full", "ga"] < es["full", "idkpo"]
    assert es["lora", "ga"] < es["lora", "idkpo"]
    assert es["lora", "ga"] < 0.9  # the adapter did unlearn (the target's forget ES is 1)
