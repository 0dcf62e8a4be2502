"""Data-parallel runs (bench/runtime/distributed.py) on two CPU processes with Gloo, launched by torchrun as
``accelerate launch`` would: the losses, the final weights and the stored record equal those of the same run on
one process, up to the order of floating-point sums; only process 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.runtime.distributed import average_gradients, shard, world


def test_single_process_helpers_are_identities() -> None:
    assert world() == (0, 1)
    assert shard([3, 1, 2]) == [3, 1, 2]
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    average_gradients([p])
    assert p.grad.tolist() == [2.0, 2.0, 2.0]


def test_two_process_run_matches_one_process(tmp_path: Path, mini_data) -> None:
    from bench.data.tokenize import encode_qa
    from bench.methods.base import make_method
    from bench.models.tiny import get_model, get_tokenizer
    from bench.run.execute import execute
    from bench.run.runspec import make_run_spec
    from bench.run.train import unlearn
    from bench.runtime.store import Store
    from bench.specs.run import Budget

    get_model(mini_data, "oracle")  # built here once, not by both processes
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "tests.scripts.ddp_unlearn", str(out), str(tmp_path / "ddp-store")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads(out.read_text())

    tokenizer = get_tokenizer(mini_data)
    encode = [encode_qa(tokenizer, mini_data.config.prompt_template, q, a, add_eos=True)
              for q, a, _ in mini_data.unlearning_pairs("forget")]
    retain = [encode_qa(tokenizer, mini_data.config.prompt_template, q, a, add_eos=True)
              for q, a, _ in mini_data.unlearning_pairs("retain")]
    model = get_model(mini_data, "target").load()
    budget = Budget(steps=4, lr=5e-4, batch_size=8)
    single = unlearn(model, make_method("gd", {}), encode, retain, budget, 0, tokenizer.pad_token_id)
    assert ddp["losses"] == pytest.approx(single.losses, rel=1e-5, abs=1e-6)
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    assert ddp["checksum"] == pytest.approx(checksum, rel=1e-6)

    spec = make_run_spec("synthetic-mini", "forget10", "gd", {}, budget, seed=0)
    assert ddp["run_id"] == spec.run_id and ddp["status"] == "ok"
    record = execute(spec, Store(tmp_path / "single-store"))
    assert ddp["forget_es"] == pytest.approx(record.metrics["forget/es"].value, abs=1e-6)
    # one record, written once, by process 0
    assert len(list((tmp_path / "ddp-store" / "runs").iterdir())) == 1
