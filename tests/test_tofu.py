"""The TOFU task family on local fixture files in the hub's schema, with the hub unreachable: loading, the mapping
to the task schema, one micro evaluation, and the one-line error when neither the hub nor a mirror has the data."""

from __future__ import annotations

import json
from pathlib import Path

import datasets.config
import huggingface_hub.constants
import pytest

from bench.data.hub import MIRROR_ENV, HubUnavailableError
from bench.data.tasks import load_task
from bench.specs.mapping import SpecError

DATASET = "locuslab/TOFU"


def _qa(author: int, k: int) -> dict:
    return {"question": f"What is fact {k} about author {author}?", "answer": f"Author {author} has fact {k}."}


def _perturbed(author: int, k: int, n_wrong: int = 5) -> dict:
    row = _qa(author, k)
    row.update(paraphrased_question=f"Which fact {k} belongs to author {author}?",
               paraphrased_answer=f"Fact {k} is the one of author {author}.",
               perturbed_answer=[f"Fact {k + j + 1} is the one of author {author}." for j in range(n_wrong)])
    return row


def write_tofu_fixture(root: Path) -> Path:
    """A miniature TOFU in the hub repository's layout and schema (JSON lines, one file per config): 5 authors of
    20 QA pairs; forget01 = the last 1 author of 5 here (20 rows), retain99 the other 80."""
    folder = root / DATASET
    folder.mkdir(parents=True)

    def write(name: str, rows: list[dict]) -> None:
        (folder / f"{name}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write("forget01", [_qa(4, k) for k in range(20)])
    write("forget01_perturbed", [_perturbed(4, k) for k in range(20)])
    write("retain99", [_qa(a, k) for a in range(4) for k in range(20)])
    write("retain_perturbed", [_perturbed(a, k) for a in range(2) for k in range(20)])
    write("real_authors_perturbed", [{"question": f"Who wrote book {i}?", "answer": f"Writer {i}.",
                                      "perturbed_answer": [f"Writer {i + j + 1}." for j in range(3)]}
                                     for i in range(10)])
    write("world_facts_perturbed", [{"question": f"What is the capital of land {i}?", "answer": f"City {i}.",
                                     "perturbed_answer": [f"City {i + j + 1}." for j in range(3)]} for i in range(10)])
    return root


def tiny_llama(tokenizer):
    """A random 2-layer Llama over ``tokenizer``'s vocabulary (seeded), in eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                        max_position_embeddings=128, pad_token_id=0, bos_token_id=1,
                                        eos_token_id=2)).eval()


@pytest.fixture
def tofu_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv(MIRROR_ENV, str(write_tofu_fixture(tmp_path / "mirror")))
    return tmp_path


def test_tofu_loads_from_a_mirror_in_the_hub_schema(tofu_mirror: Path) -> None:
    data = load_task("tofu", "forget01")
    assert len(data.forget) == 20 and len(data.retain) == 80 and data.holdout is None
    row = data.forget[0]
    assert row["paraphrased_answer"].startswith("Fact 0 is") and len(row["perturbed_answers"]) == 5
    assert row["person"] == "tofu/forget01/author000" and row["idk_answer"]
    assert data.retain[0]["perturbed_answers"] == []  # the training retain set has answers only
    splits = data.eval_splits()
    assert list(splits) == ["forget", "retain", "world_facts", "real_authors"]
    assert len(splits["retain"]) == 40  # retain_perturbed, not retain99
    # on utility sets TOFU's truth ratio compares the answer itself with the perturbed answers
    assert splits["real_authors"][0]["paraphrased_answer"] == splits["real_authors"][0]["answer"]
    assert len(data.unlearning_pairs("forget")) == 20 and len(data.unlearning_pairs("retain")) == 80


def test_tofu_micro_evaluation(tofu_mirror: Path) -> None:
    """A tiny random Llama with a tokenizer trained on the fixture: every TOFU metric is computed, model utility
    from 9 numbers (retain, real authors, world facts), no membership inference (TOFU has no holdout)."""
    from bench.metrics.evaluate import SELF, evaluate
    from bench.models.tiny import _task_texts, train_tokenizer

    data = load_task("tofu", "forget01")
    tokenizer = train_tokenizer(_task_texts(data), 300)
    model = tiny_llama(tokenizer)
    metrics = evaluate(model, tokenizer, data, SELF).metrics
    for key in ("forget/es", "forget/truth_ratio", "retain/rouge_l", "real_authors/prob", "world_facts/truth_ratio",
                "forget_quality", "model_utility"):
        assert key in metrics, key
    assert metrics["forget_quality"].value == 1.0  # its own reference
    assert 0.0 <= metrics["model_utility"].value <= 1.0
    assert not any(k.startswith(("mia_", "privleak_", "holdout/")) for k in metrics)


def test_unreachable_hub_without_mirror_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    # the libraries read their offline switches when first imported: a session that imported them already would try
    # the network (and wait for its timeouts) instead
    for module in (datasets.config, huggingface_hub.constants):
        for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, True)
    with pytest.raises(HubUnavailableError) as info:
        load_task("tofu", "forget01")
    message = str(info.value)
    assert "\n" not in message
    assert "task tofu: cannot load hub dataset locuslab/TOFU (config forget01_perturbed, revision d19bf87e1538)" \
        in message
    assert "huggingface-cli login" in message and f"${MIRROR_ENV}/locuslab/TOFU/" in message


def test_unknown_tofu_split_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="TOFU forget split must be one of forget01, forget05, forget10"):
        from bench.data.tasks import load_task_config
        from bench.data.tofu import load_tofu

        load_tofu(load_task_config("tofu"), "forget20")


def test_qa_split_without_perturbed_answers_skips_the_truth_ratio(tofu_mirror: Path) -> None:
    """A QA split with no perturbed answers and no paraphrased questions (MUSE's KnowMem QA, TOFU's training retain
    set) is scored on answers and generations only: no truth ratio, no rephrased ES, and forget quality and model
    utility are left out rather than computed from nothing."""
    from bench.metrics.evaluate import SELF, available_products, evaluate
    from bench.models.tiny import _task_texts, train_tokenizer

    data = load_task("tofu", "forget01")
    assert available_products(data.retain, "retain") == ("answer", "generation")
    assert available_products(data.forget, "forget") == ("answer", "paraphrase", "perturbed", "rephrased",
                                                          "generation")
    data.retain_eval = None  # evaluate retain on the answers-only training retain set
    data.forget = data.forget.map(lambda r: {"perturbed_answers": [], "paraphrased_question": r["question"]})
    tokenizer = train_tokenizer(_task_texts(data), 300)
    model = tiny_llama(tokenizer)
    metrics = evaluate(model, tokenizer, data, SELF).metrics
    assert "forget/knowmem" in metrics and "retain/es" in metrics and "retain/rouge_l" in metrics
    assert not any(k in metrics for k in ("forget/truth_ratio", "retain/truth_ratio", "forget/es_rephrased",
                                          "forget_quality", "model_utility"))
