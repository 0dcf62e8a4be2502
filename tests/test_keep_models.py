"""Kept models (``keep_models`` / ``ubench run --keep-models``): a run's final and calibrated models are saved next to
its record as ``save_pretrained`` folders that reproduce the record's numbers and that ``ubench geffect
--checkpoint`` reads; without the option nothing is saved, and a stored record without models is run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from bench.cli.main import main
from bench.run.calibrate import AnswerScorer
from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.specs.run import Budget
from bench.specs.tiers import tier

from .conftest import MINI

HARSH = Budget(steps=12, lr=1e-3, batch_size=8, callback_every=3)  # GA needs mixing on the mini model (alpha < 1)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    return one_torch_thread


def test_kept_models_give_back_the_records_final_and_calibrated_numbers(store, mini_data, tmp_path: Path) -> None:
    spec = make_run_spec(MINI, "forget10", "ga", {}, HARSH, seed=0)
    record = execute(spec, store, keep_models=True)
    assert record.ok, record.error
    kept = store.kept_models(spec.run_id)
    assert sorted(kept) == ["calibrated", "final"]
    assert kept["final"] == store.folder("runs", spec.run_id) / "models" / "final"
    cal = record.control.calibration
    assert 0 < cal.alpha < 1  # the calibrated model is a mixture, not the final one again
    scorer = AnswerScorer(json_free_tokenizer(kept["final"]), mini_data)
    final = AutoModelForCausalLM.from_pretrained(kept["final"])
    calibrated = AutoModelForCausalLM.from_pretrained(kept["calibrated"])
    forget_es, _ = scorer(final)
    assert forget_es == pytest.approx(record.metrics["forget/es"].value, abs=1e-9)
    forget_alpha, retain_alpha = scorer(calibrated)
    assert forget_alpha == pytest.approx(cal.forget_es_alpha, abs=1e-9)
    assert retain_alpha == pytest.approx(cal.u_alpha, abs=1e-9)
    assert "keep_models_seconds" in record.timings
    # ubench geffect reads a kept model folder
    out = tmp_path / "geffect.json"
    assert main(["geffect", "--task", MINI, "--split", "forget10", "--method", "npo", "--checkpoint",
                 str(kept["calibrated"]), "--items", "4", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["checkpoint"] == str(kept["calibrated"])


def json_free_tokenizer(folder: Path):
    """The tokenizer saved beside a kept model (the folder is self-contained)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_no_models_unless_asked_and_a_stored_record_without_them_is_run_again(store, mini_data) -> None:
    spec = make_run_spec(MINI, "forget10", "ga", {}, Budget(steps=2, lr=2e-4, batch_size=4), seed=0)
    first = execute(spec, store)
    assert first.ok and store.kept_models(spec.run_id) == {}
    assert not store.models_folder(spec.run_id).exists()
    assert execute(spec, store) == first  # reused, nothing saved
    again = execute(spec, store, keep_models=True)  # asked for models the record lacks: run again
    assert sorted(store.kept_models(spec.run_id)) == ["calibrated", "final"]
    assert again.metrics["forget/es"].value == first.metrics["forget/es"].value
    assert execute(spec, store, keep_models=True).timings == again.timings  # now reused


def test_a_run_kept_at_alpha_one_keeps_the_unlearned_model(store, mini_data) -> None:
    """alpha* = 1 (RMU keeps the retain ES on the mini tier): the calibration's probes mix the model in place, and
    the kept final model must still be the unlearned one, not the last probe's mixture."""
    spec = make_run_spec(MINI, "forget10", "rmu", {}, tier("mini"), seed=0)
    record = execute(spec, store, keep_models=True)
    assert record.ok and record.control.calibration.alpha == 1.0
    assert record.metrics["forget/es"].value < 0.5  # far from the target's 1.0: a mixture would score higher
    kept = store.kept_models(spec.run_id)
    scorer = AnswerScorer(json_free_tokenizer(kept["final"]), mini_data)
    for kind in ("final", "calibrated"):
        forget_es, _ = scorer(AutoModelForCausalLM.from_pretrained(kept[kind]))
        assert forget_es == pytest.approx(record.metrics["forget/es"].value, abs=1e-9), kind
