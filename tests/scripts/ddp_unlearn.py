"""Run under ``torchrun --nproc_per_node 2``: one GA unlearning run on the mini task, data-parallel on CPU (Gloo).
Process 0 writes the per-step losses and a checksum of the final weights to ``argv[1]`` (JSON), and stores the run
record through ``execute`` in the store folder ``argv[2]``; ``tests/test_distributed.py`` compares both with the
same run on one process."""

from __future__ import annotations

import json
import sys

import torch


def main(out: str, store_root: str) -> None:
    from pathlib import Path

    from bench.data.tasks import load_task
    from bench.data.tokenize import encode_qa
    from bench.methods.base import make_method
    from bench.models.tiny import get_model, get_tokenizer
    from bench.run.execute import execute
    from bench.run.runspec import make_run_spec
    from bench.run.train import unlearn
    from bench.runtime.distributed import init_from_env, is_main, world
    from bench.runtime.logs import quiet
    from bench.runtime.store import Store
    from bench.specs.run import Budget

    quiet()
    torch.set_num_threads(1)
    assert init_from_env() and world()[1] == 2
    data = load_task("synthetic-mini", "forget10")
    tokenizer = get_tokenizer(data)
    encode = [encode_qa(tokenizer, data.config.prompt_template, q, a, add_eos=True)
              for q, a, _ in data.unlearning_pairs("forget")]
    retain = [encode_qa(tokenizer, data.config.prompt_template, q, a, add_eos=True)
              for q, a, _ in data.unlearning_pairs("retain")]
    model = get_model(data, "target").load()
    budget = Budget(steps=4, lr=5e-4, batch_size=8)
    result = unlearn(model, make_method("gd", {}), encode, retain, budget, 0, tokenizer.pad_token_id)
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    spec = make_run_spec("synthetic-mini", "forget10", "gd", {}, budget, seed=0)
    record = execute(spec, Store(Path(store_root)))
    if not record.ok:
        print(f"rank {world()[0]}: {record.error}", file=sys.stderr)
    if is_main():
        Path(out).write_text(json.dumps({"losses": result.losses, "checksum": checksum,
                                         "forget_es": record.metrics["forget/es"].value,
                                         "status": record.status, "run_id": spec.run_id}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
