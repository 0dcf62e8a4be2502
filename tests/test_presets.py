"""Model presets and the device / precision path, offline: every shipped preset parses; a preset whose checkpoints
sit in a local mirror in the hub's layout runs end to end on CPU (published target, retain oracle fine-tuned from the
base on first use); missing checkpoints and oracles fail in one line; bf16 autocast, gradient checkpointing and the
out-of-memory batch back-off behave as documented."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bench.data.hub import MIRROR_ENV, HubUnavailableError
from bench.models.presets import built_path, load_preset, preset_names
from bench.runtime.device import Runtime, adaptive_batches, select_device, use_runtime
from bench.specs.mapping import SpecError
from bench.specs.run import Budget

from .conftest import MINI

BUDGET = Budget(steps=3, lr=5e-4, batch_size=8)


def test_every_shipped_preset_parses_and_reports_unpinned_revisions() -> None:
    names = preset_names()
    for expected in ("tofu_phi15", "tofu_llama2_7b_chat", "tofu_llama32_1b", "tofu_llama32_3b",
                     "muse_news_llama2_7b", "muse_books_llama2_7b", "wmdp_zephyr_7b", "smollm2_135m"):
        assert expected in names
    for name in names:
        preset = load_preset(name)
        assert preset.citation and preset.license, name
        for checkpoint in (preset.target, preset.base, *preset.oracles):
            if checkpoint is not None and checkpoint.revision != "main":
                assert checkpoint.pinned, (name, checkpoint)
    assert load_preset("smollm2_135m").unpinned() == []  # shipped in a package: nothing to resolve
    assert "locuslab/tofu_ft_phi-1.5@main" in load_preset("tofu_phi15").unpinned()


def test_unknown_preset_and_bad_fields_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown model preset 'tofu_phi' ; did you mean 'tofu_phi15'".replace(
            " ;", ";")):
        load_preset("tofu_phi")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntarget: {hub_id: a/b}\ndtype: float64\n")
    with pytest.raises(SpecError, match="dtype: expected one of float32, bfloat16, float16, got 'float64'"):
        load_preset(str(bad))
    bad.write_text("name: bad\ndescription: no checkpoints\n")
    with pytest.raises(SpecError, match="target: a preset needs a target checkpoint or a base"):
        load_preset(str(bad))


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub unreachable without waiting for network retries (as on a machine with no route to it)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def mirrored_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mini_data) -> Path:
    """A hub mirror holding the mini task's tiny target as ``lab/mini-target`` and a freshly initialised model of
    the same shape as ``lab/mini-base``, and a preset that names them (no oracle: it is built from the base)."""
    from transformers import LlamaForCausalLM

    from bench.models.tiny import get_model, get_tokenizer, llama_config

    mirror = tmp_path / "mirror"
    target = get_model(mini_data, "target").path
    shutil.copytree(target, mirror / "lab" / "mini-target")
    torch.manual_seed(1)
    base = LlamaForCausalLM(llama_config(mini_data.config.model, len(get_tokenizer(mini_data))))
    base.save_pretrained(mirror / "lab" / "mini-base")
    get_tokenizer(mini_data).save_pretrained(mirror / "lab" / "mini-base")
    presets = tmp_path / "models"
    presets.mkdir()
    (presets / "mini_pretrained.yaml").write_text(f"""name: mini_pretrained
description: the mini task's target served as a hub checkpoint
tasks: [{MINI}]
target: {{hub_id: lab/mini-target, revision: 0123456789abcdef0123456789abcdef01234567}}
base: {{hub_id: lab/mini-base, revision: 0123456789abcdef0123456789abcdef01234567}}
finetune: {{epochs: 2, lr: 0.005, batch_size: 16, weight_decay: 0.0, warmup: 0.1, seed: 0}}
autocast: bfloat16
license: test
citation: test
""")
    _offline(monkeypatch)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    monkeypatch.setenv("UBENCH_MODELS", str(presets))
    monkeypatch.setenv("UBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_a_preset_run_uses_its_checkpoints_and_records_the_device(mirrored_preset: Path, store) -> None:
    from bench.data.tasks import load_task
    from bench.run.execute import execute
    from bench.run.runspec import make_run_spec

    spec = make_run_spec(MINI, "forget10", "npo", {}, BUDGET, seed=0, model="mini_pretrained")
    assert spec.model["kind"] == "preset" and spec.model["preset"] == "mini_pretrained"
    tiny = make_run_spec(MINI, "forget10", "npo", {}, BUDGET, seed=0)
    assert spec.run_id != tiny.run_id
    record = execute(spec, store)
    assert record.ok, record.error
    assert record.env["device"] == "cpu" and "autocast" not in record.env  # bf16 autocast is GPU-only
    # the published target is the mini task's own target: it memorised the forget set; the oracle was built
    refs = {r.spec["model"]: r for r in (store.load_reference(p.name) for p in (store.root / "refs").iterdir())}
    assert refs["target"].metrics["forget/es"].value > 0.95
    assert refs["target"].spec["preset"] == "mini_pretrained"
    oracle_dir = built_path(load_preset("mini_pretrained"), load_task(MINI, "forget10"), "oracle")
    assert (oracle_dir / "build.json").exists()
    assert record.metrics["forget/es"].value <= refs["target"].metrics["forget/es"].value


def test_missing_checkpoint_and_missing_oracle_are_one_line_errors(mirrored_preset: Path, store) -> None:
    from bench.data.tasks import load_task
    from bench.models.presets import preset_models, preset_tokenizer

    data = load_task(MINI, "forget10")
    presets = mirrored_preset / "models"
    (presets / "gone.yaml").write_text("name: gone\ntarget: {hub_id: lab/not-mirrored, revision: main}\n")
    with pytest.raises(HubUnavailableError) as info:
        preset_tokenizer(load_preset("gone"))
    assert "\n" not in str(info.value) and "lab/not-mirrored" in str(info.value)
    assert "$UBENCH_HUB_MIRROR/lab/not-mirrored/" in str(info.value)
    (presets / "no_oracle.yaml").write_text("name: no_oracle\ntarget: {hub_id: lab/mini-target, revision: main}\n")
    preset = load_preset("no_oracle")
    with pytest.raises(SpecError, match="no retain oracle for synthetic-mini/forget10 and no base"):
        preset_models(preset, data, preset_tokenizer(preset))


def test_build_oracle_command(mirrored_preset: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli.main import main

    assert main(["build-oracle", MINI, "forget10", "--model", "mini_pretrained"]) == 0
    out = capsys.readouterr().out
    assert "oracle" in out and "mini_pretrained" in out
    assert main(["presets"]) == 0
    assert "mini_pretrained" in capsys.readouterr().out


def test_bf16_autocast_scores_close_to_fp32(mini_data) -> None:
    """The engine under bf16 autocast (the GPU precision; CPU autocast runs the same code) gives per-token
    log-probs within bf16 round-off of fp32, and log-softmax stays in fp32."""
    from bench.data.tokenize import encode_qa
    from bench.metrics.engine import teacher_forced
    from bench.models.tiny import get_model, get_tokenizer

    tokenizer, model = get_tokenizer(mini_data), get_model(mini_data, "target").load()
    rows = mini_data.forget.select(range(8))
    encoded = [encode_qa(tokenizer, mini_data.config.prompt_template, q, a, add_eos=False)
               for q, a in zip(rows["question"], rows["answer"])]
    fp32 = teacher_forced(model, encoded, tokenizer.pad_token_id, 8)
    with use_runtime(Runtime(torch.device("cpu"), "bfloat16")):
        bf16 = teacher_forced(model, encoded, tokenizer.pad_token_id, 8)
    for a, b in zip(fp32, bf16):
        assert b.logprobs.dtype == a.logprobs.dtype
        assert abs(a.logprobs.mean() - b.logprobs.mean()) < 0.15
    assert any((a.logprobs != b.logprobs).any() for a, b in zip(fp32, bf16))  # it did compute in bf16


def test_gradient_checkpointing_gives_the_same_training(mini_data) -> None:
    from bench.data.tokenize import encode_qa
    from bench.methods.base import make_method
    from bench.models.tiny import get_model, get_tokenizer
    from bench.run.execute import gradient_checkpointing
    from bench.run.train import unlearn

    tokenizer = get_tokenizer(mini_data)
    forget = [encode_qa(tokenizer, mini_data.config.prompt_template, q, a, add_eos=True)
              for q, a, _ in mini_data.unlearning_pairs("forget")]
    losses = []
    for checkpointing in (False, True):
        model = get_model(mini_data, "target").load()
        with use_runtime(Runtime(torch.device("cpu"), "", checkpointing)), gradient_checkpointing(model):
            assert model.is_gradient_checkpointing == checkpointing
            result = unlearn(model, make_method("ga", {}), forget, [], BUDGET, 0, tokenizer.pad_token_id)
        assert not model.is_gradient_checkpointing and model.config.use_cache
        losses.append(result.losses)
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_out_of_memory_halves_the_batch_and_keeps_the_smaller_size() -> None:
    seen: list[int] = []

    def step(chunk: list[int]) -> None:
        if len(chunk) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        seen.extend(chunk)

    assert adaptive_batches(list(range(20)), 16, step) == 2
    assert seen == list(range(20))

    def broken(chunk: list[int]) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not retried
        adaptive_batches([1, 2, 3], 2, broken)


def test_device_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UBENCH_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")
    monkeypatch.setenv("UBENCH_DEVICE", "auto")
    assert select_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("UBENCH_DEVICE", "cuda")
        with pytest.raises(ValueError, match="UBENCH_DEVICE: device 'cuda' requested but torch sees no CUDA"):
            select_device()
    monkeypatch.setenv("UBENCH_DEVICE", "tpu9")
    with pytest.raises(ValueError, match="unknown device 'tpu9'"):
        select_device()


def test_peak_memory_is_a_cuda_measurement_and_not_evidence() -> None:
    from bench.runtime.device import peak_memory_gib, reset_peak_memory
    from bench.runtime.records import evidence

    reset_peak_memory(torch.device("cpu"))  # no-op off CUDA
    assert peak_memory_gib(torch.device("cpu")) is None
    if torch.cuda.is_available():
        device = torch.device("cuda")
        reset_peak_memory(device)
        block = torch.empty(2**28, dtype=torch.uint8, device=device)  # 0.25 GiB
        assert peak_memory_gib(device) >= 0.25
        del block
    record = {"schema_version": 2, "metrics": {"forget/es": 0.5}, "env": {"cuda_peak_memory_gib": 13.6},
              "build": {"params": 3, "build_seconds": 78.8, "cuda_peak_memory_gib": 4.85}}
    assert evidence(record) == {"schema_version": 2, "metrics": {"forget/es": 0.5}, "build": {"params": 3}}


@pytest.mark.parametrize("board", ["tofu", "smollm2"])
def test_preset_boards_plan_without_hub_access(board: str) -> None:
    """The real-model boards validate every name, preset and hyper-parameter offline (planning loads no data);
    each cell's spec names its preset, and the rows are labelled task/split/preset."""
    from bench.grid.cells import plan
    from bench.runtime.paths import REPO_ROOT
    from bench.specs.board import LeaderboardSpec

    spec = LeaderboardSpec.load(REPO_ROOT / "leaderboards" / f"{board}.yaml")
    cells = plan(spec)
    assert cells and all(c.spec.model["kind"] == "preset" for c in cells)
    assert all(c.name.split("/")[2] == c.task.model for c in cells)
    if board == "tofu":  # OpenUnlearning's reproduction budget: 10 epochs of 400 items at effective batch 32
        assert spec.budget.steps * spec.budget.batch_size * spec.budget.grad_accum == 4000
