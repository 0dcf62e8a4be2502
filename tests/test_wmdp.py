"""The WMDP task family on local fixture files in the hub's schema, with the hub unreachable: loading and the mapping
to the task schema (the corpora are the unlearning request), one micro evaluation, the offline lm-eval templates
(same prompts as lm-eval's own wmdp / mmlu tasks), and the one-line errors when neither the hub nor a mirror has a
dataset (the gated bio forget corpus: its access request form)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data.hub import MIRROR_ENV, HubUnavailableError
from bench.data.schema import IDK_ANSWERS
from bench.data.tasks import load_task
from bench.specs.mapping import SpecError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_QUESTIONS = 8
SUBJECTS = ("college_biology", "computer_security")


def _mc(topic: str, i: int, subject: str | None = None) -> dict:
    """One question in the hub schema: four choices, the correct one at index i % 4."""
    gold = i % 4
    choices = [f"{topic} option {i}-{j}" if j != gold else f"{topic} fact {i}" for j in range(4)]
    row = {"question": f"  Which {topic} statement {i} is true? ", "choices": choices, "answer": gold}
    if subject is not None:
        row = {"question": row["question"], "subject": subject, "choices": choices, "answer": gold}
    return row


def _write(root: Path, dataset: str, config: str, split: str, rows: list[dict]) -> None:
    path = root / dataset / config / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_wmdp_fixture(root: Path, bio_forget: bool = True) -> Path:
    """A miniature cais/wmdp (bio and cyber, 8 questions each), cais/mmlu `all` (8 questions, 2 subjects) and the
    corpora (3 short documents each; the cyber forget corpus has a blank one), as mirror files
    ``<dataset>/<config>/<split>.json`` in the hub's schema. ``bio_forget=False`` leaves out the gated corpus."""
    for domain in ("bio", "cyber"):
        _write(root, "cais/wmdp", f"wmdp-{domain}", "test", [_mc(domain, i) for i in range(N_QUESTIONS)])
    _write(root, "cais/mmlu", "all", "test", [_mc("general", i, SUBJECTS[i % 2]) for i in range(N_QUESTIONS)])
    if bio_forget:
        _write(root, "cais/wmdp-bio-forget-corpus", "default", "train",
               [{"title": f"Paper {i}", "abstract": f"Abstract {i}.", "text": f"Bio forget paper {i} body text.",
                 "doi": f"10.0000/{i}"} for i in range(3)])
    _write(root, "cais/wmdp-corpora", "cyber-forget-corpus", "train",
           [{"text": "Cyber forget text 0."}, {"text": "  "}, {"text": "Cyber forget text 2."}])
    for domain in ("bio", "cyber"):
        _write(root, "cais/wmdp-corpora", f"{domain}-retain-corpus", "train",
               [{"text": f"{domain.capitalize()} retain text {i}."} for i in range(3)])
    return root


def tiny_llama(tokenizer):
    """A random 2-layer Llama over ``tokenizer``'s vocabulary (seeded), in eval mode, 512 positions (the lm-eval
    prompts carry the description and four choices)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                        max_position_embeddings=512, pad_token_id=0, bos_token_id=1,
                                        eos_token_id=2)).eval()


def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub unreachable: the offline switches, also where ``datasets`` / ``huggingface_hub`` read them at import
    (already done by the time a test runs; otherwise the hub is retried for ~20 s), and an empty datasets cache."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def wmdp_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _offline(tmp_path, monkeypatch)
    monkeypatch.setenv("UBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(MIRROR_ENV, str(write_wmdp_fixture(tmp_path / "mirror")))
    return tmp_path / "mirror"


@pytest.fixture
def bio_data(wmdp_mirror: Path):
    return load_task("wmdp", "bio")


@pytest.fixture
def tokenizer(bio_data):
    from bench.models.tiny import _task_texts, train_tokenizer

    return train_tokenizer(_task_texts(bio_data), 300)


# ---------------------------------------------------------------------------------------------------- loading

@pytest.mark.parametrize("domain", ["bio", "cyber"])
def test_wmdp_maps_questions_and_corpora(wmdp_mirror: Path, domain: str) -> None:
    data = load_task("wmdp", domain)
    assert len(data.forget) == N_QUESTIONS and len(data.retain) == N_QUESTIONS
    assert data.holdout is None and data.world_facts is None and data.retain_eval is None
    raw = _mc(domain, 1)
    row = data.forget[1]
    assert row["id"] == f"wmdp/{domain}/00001" and row["person"] == f"wmdp/{domain}"
    # lm-eval's prompt body: the stripped question, then the lettered choices
    assert row["question"] == (f"Which {domain} statement 1 is true?\nA. {raw['choices'][0]}\nB. {raw['choices'][1]}"
                               f"\nC. {raw['choices'][2]}\nD. {raw['choices'][3]}")
    assert row["answer"] == raw["choices"][1] == f"{domain} fact 1"
    assert row["perturbed_answers"] == [raw["choices"][j] for j in (0, 2, 3)]  # the 3 wrong choices, in order
    assert row["paraphrased_answer"] == row["answer"] and row["paraphrased_question"] == row["question"]
    assert row["idk_answer"] in IDK_ANSWERS
    mmlu = data.retain[2]
    assert mmlu["id"] == "mmlu/00002" and mmlu["person"] == f"mmlu/{SUBJECTS[0]}"
    assert mmlu["answer"] == "general fact 2" and len(mmlu["perturbed_answers"]) == 3

    forget_texts = list(data.forget_corpus["text"])
    if domain == "bio":  # the text column of the bio forget corpus (title, abstract and doi dropped)
        assert forget_texts == [f"Bio forget paper {i} body text." for i in range(3)]
        assert data.forget_corpus["id"] == [f"wmdp/bio-forget/{i:05d}" for i in range(3)]
    else:  # the blank document is dropped; ids keep the hub row index
        assert forget_texts == ["Cyber forget text 0.", "Cyber forget text 2."]
        assert data.forget_corpus["id"] == ["wmdp/cyber-forget/00000", "wmdp/cyber-forget/00002"]
    retain_texts = list(data.retain_corpus["text"])

    # the corpus, not the questions, is the unlearning request
    assert data.unlearning_pairs("forget") == [(None, t, IDK_ANSWERS[0]) for t in forget_texts]
    assert [answer for _, answer, _ in data.unlearning_pairs("retain")] == retain_texts
    target, oracle = set(data.target_train["answer"]), set(data.oracle_train["answer"])
    assert set(forget_texts) <= target and not set(forget_texts) & oracle
    assert set(retain_texts) <= target and set(retain_texts) <= oracle
    assert not {row["answer"] for row in data.forget} & target  # the questions are evaluated, never trained
    assert list(data.eval_splits()) == ["forget", "retain"]


def test_unknown_wmdp_split_is_a_spec_error() -> None:
    from bench.data.tasks import load_task_config
    from bench.data.wmdp import load_wmdp

    with pytest.raises(SpecError, match="WMDP forget split must be one of bio, cyber"):
        load_wmdp(load_task_config("wmdp"), "chem")


# ------------------------------------------------------------------------------------------------- evaluation

def test_wmdp_micro_evaluation(bio_data, tokenizer) -> None:
    """A tiny random Llama with a tokenizer trained on the fixture: the QA metrics of the WMDP questions (forget)
    and MMLU (retain), the truth ratio comparing the correct choice with the wrong ones; no membership inference
    (no holdout) and no world facts."""
    from bench.metrics.evaluate import SELF, evaluate

    metrics = evaluate(tiny_llama(tokenizer), tokenizer, bio_data, SELF).metrics
    for key in ("forget/prob", "forget/truth_ratio", "forget/rouge_l", "retain/prob", "retain/truth_ratio",
                "retain/rouge_l"):
        assert key in metrics, key
    assert 0.0 <= metrics["forget/prob"].value <= 1.0 and 0.0 <= metrics["forget/truth_ratio"].value <= 1.0
    assert not any(k.startswith(("mia_", "privleak_", "holdout/", "world_facts/")) for k in metrics)
    assert "forget/es_rephrased" not in metrics  # WMDP has no paraphrased questions


# ---------------------------------------------------------------------------------------------------- lm-eval

LM_EVAL_TASKS = Path(__import__("lm_eval").__file__).parent / "tasks"


def _lm_eval_own_task(yaml_path: Path, data_file: Path):
    """lm-eval's own task config (its YAML with includes), with only the data source swapped for ``data_file``."""
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(yaml_path)
    config.update(dataset_path="json", dataset_name=None, test_split="test", fewshot_split=None,
                  dataset_kwargs={"data_files": {"test": str(data_file)}})
    for key in ("tag", "group"):
        config.pop(key, None)
    return ConfigurableTask(config=config)


def _ours(folder: Path, name: str):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(folder), include_defaults=False).load([name])["tasks"][name]


def test_offline_templates_match_lm_eval_prompts(bio_data) -> None:
    """The rendered data files hold the hub rows verbatim, and each embedded task builds exactly the prompt,
    choices and target that lm-eval's own task (wmdp_bio, wmdp_cyber, mmlu_<subject>) builds for the same row."""
    from bench.data.lm_eval_files import embedded_tasks, render_task_dir

    assert embedded_tasks("wmdp") == ("mmlu_local", "wmdp_local_bio", "wmdp_local_cyber")
    folder = render_task_dir(bio_data)
    assert render_task_dir(bio_data) == folder  # content-addressed, written once
    rows = [json.loads(line) for line in (folder / "wmdp_cyber.jsonl").read_text().splitlines()]
    assert rows == [_mc("cyber", i) for i in range(N_QUESTIONS)]  # both domains, whichever the forget split

    pairs = [("wmdp_local_bio", LM_EVAL_TASKS / "wmdp" / "wmdp_bio.yaml", "wmdp_bio.jsonl"),
             ("wmdp_local_cyber", LM_EVAL_TASKS / "wmdp" / "wmdp_cyber.yaml", "wmdp_cyber.jsonl"),
             ("mmlu_local", LM_EVAL_TASKS / "mmlu" / "default" / f"mmlu_{SUBJECTS[0]}.yaml", "mmlu.jsonl")]
    for name, theirs_yaml, data_file in pairs:
        ours, theirs = _ours(folder, name), _lm_eval_own_task(theirs_yaml, folder / data_file)
        doc = ours.test_docs()[0]  # an mmlu row of SUBJECTS[0]
        context = ours.fewshot_context(doc, 0)
        assert context == theirs.fewshot_context(doc, 0)
        assert ours.doc_to_choice(doc) == theirs.doc_to_choice(doc) == ["A", "B", "C", "D"]
        assert ours.doc_to_target(doc) == theirs.doc_to_target(doc) == 0
        assert ours.config.target_delimiter == theirs.config.target_delimiter == " "

    doc = _ours(folder, "wmdp_local_bio").test_docs()[1]
    assert _ours(folder, "wmdp_local_bio").fewshot_context(doc, 0) == (
        "The following are multiple choice questions (with answers) about biology.\n\n"
        "Which bio statement 1 is true?\nA. bio option 1-0\nB. bio fact 1\nC. bio option 1-2\nD. bio option 1-3"
        "\nAnswer:")
    doc = _ours(folder, "mmlu_local").test_docs()[1]
    assert _ours(folder, "mmlu_local").fewshot_context(doc, 0).startswith(
        "The following are multiple choice questions (with answers) about computer security.\n\nWhich general")


def test_offline_lm_eval_accuracies(bio_data, tokenizer) -> None:
    from bench.metrics.lm_eval_utility import lm_eval_utility

    scores = lm_eval_utility(tiny_llama(tokenizer), tokenizer, bio_data, tasks=bio_data.config.lm_eval_tasks)
    assert set(scores) == {"wmdp_local_bio/acc", "wmdp_local_cyber/acc", "mmlu_local/acc"}
    for entry in scores.values():
        assert 0.0 <= entry["value"] <= 1.0 and entry["n"] == N_QUESTIONS


# ----------------------------------------------------------------------------------------------------- errors

def test_unreachable_hub_without_mirror_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(tmp_path, monkeypatch)
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(HubUnavailableError) as info:
        load_task("wmdp", "bio")
    message = str(info.value)
    assert "\n" not in message
    assert ("task wmdp: cannot load hub dataset cais/wmdp (config wmdp-bio, split test, revision 7125571f22f0)"
            in message)
    assert "huggingface-cli login" in message and f"${MIRROR_ENV}/cais/wmdp/wmdp-bio/test.json" in message


def test_gated_bio_forget_corpus_error_names_the_request_form(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(tmp_path, monkeypatch)
    monkeypatch.setenv(MIRROR_ENV, str(write_wmdp_fixture(tmp_path / "mirror", bio_forget=False)))
    assert len(load_task("wmdp", "cyber").forget_corpus) == 2  # cyber needs nothing gated
    with pytest.raises(HubUnavailableError) as info:
        load_task("wmdp", "bio")
    message = str(info.value)
    assert "\n" not in message
    assert "cannot load hub dataset cais/wmdp-bio-forget-corpus (config default, split train" in message
    assert "gated" in message and "access request form" in message
    assert "https://huggingface.co/datasets/cais/wmdp-bio-forget-corpus" in message


def test_bio_and_cyber_have_their_own_target_and_tokenizer(wmdp_mirror: Path) -> None:
    """The two domains train on different corpora, so their targets (and tokenizers) must not share a cache entry
    (``params.target_per_split``), while the synthetic task keeps one target whatever the split."""
    from bench.models.tiny import model_key, model_split
    from bench.run.runspec import make_run_spec
    from bench.specs.run import Budget

    bio, cyber = load_task("wmdp", "bio"), load_task("wmdp", "cyber")
    assert model_key(bio, "target") != model_key(cyber, "target")
    assert model_split(bio.config, "bio", "target") == "bio"
    budget = Budget(steps=1)
    assert (make_run_spec("wmdp", "bio", "ga", {}, budget, 0).model["target"]
            != make_run_spec("wmdp", "cyber", "ga", {}, budget, 0).model["target"])
    synthetic = load_task("synthetic-mini", "forget10")
    assert model_split(synthetic.config, "forget10", "target") == ""
