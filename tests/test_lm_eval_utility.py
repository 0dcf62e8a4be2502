"""lm-eval real-world utility on the embedded synthetic task, offline: the rendered task folder, the wrong-answer
derivation, lm-eval's scores of the mini target and of a random model, and exact agreement with the repo's own
teacher-forced engine."""

from __future__ import annotations

import hashlib
import json
import logging
import random

import numpy as np
import pytest
import torch

from bench.data.lm_eval_files import DATA_FILE, EMBEDDED_TASKS, mc_item, render_task_dir, wrong_answers
from bench.data.tokenize import encode_prompt, encode_qa
from bench.metrics.engine import teacher_forced
from bench.metrics.lm_eval_utility import lm_eval_utility

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(mini_data):
    from bench.models.tiny import get_tokenizer

    return get_tokenizer(mini_data)


@pytest.fixture(scope="module")
def target(mini_data):
    from bench.models.tiny import get_model

    return get_model(mini_data, "target").load()


@pytest.fixture(scope="module")
def random_model(target):
    """A randomly initialised model of the target's configuration (fixed seed)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(target.config).eval()


@pytest.fixture(scope="module")
def target_scores(mini_data, target, tokenizer):
    return lm_eval_utility(target, tokenizer, mini_data)


@pytest.fixture(scope="module")
def random_scores(mini_data, random_model, tokenizer):
    return lm_eval_utility(random_model, tokenizer, mini_data)


def _state_digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / DATA_FILE).read_text().splitlines()]


def _independent_mc(model, tokenizer, data) -> tuple[float, np.ndarray]:
    """MC accuracy from bench's own engine: each choice scored as a QA answer (prompt, then " " + choice), summed
    answer-token log-probs, first argmax (np.argmax, as lm-eval) against gold."""
    rows = _rows(render_task_dir(data))
    template = data.config.prompt_template
    encoded = [encode_qa(tokenizer, template, r["question"], c, add_eos=False) for r in rows for c in r["choices"]]
    scores = teacher_forced(model, encoded, tokenizer.pad_token_id, batch_size=64, moments=False)
    sums = np.array([s.logprobs.sum() for s in scores]).reshape(len(rows), -1)
    gold = np.array([r["gold"] for r in rows])
    return float(np.mean(sums.argmax(1) == gold)), sums


# ------------------------------------------------------------------------------------------- data and templates

def test_wrong_answers_from_word_diff():
    row = {"id": "world/capital/Freedonia", "question": "What is the capital of Freedonia?",
           "answer": "The capital of Freedonia is Grand Fenwick.",
           "paraphrased_answer": "Grand Fenwick is the capital city of Freedonia.",
           "perturbed_answers": ["Sylvania is the capital city of Freedonia.",
                                 "Port Royal Bay is the capital city of Freedonia.",
                                 "Ruritania is the capital city of Freedonia."]}
    assert wrong_answers(row["answer"], row["paraphrased_answer"], row["perturbed_answers"]) == [
        "The capital of Freedonia is Sylvania.", "The capital of Freedonia is Port Royal Bay.",
        "The capital of Freedonia is Ruritania."]
    # the value keeps its trailing punctuation when it ends the sentence
    assert wrong_answers("People in Freedonia speak Fredish.", "The language of Freedonia is Fredish.",
                         ["The language of Freedonia is Sylvish."]) == ["People in Freedonia speak Sylvish."]
    item = mc_item(row)
    assert item["choices"][item["gold"]] == row["answer"]
    assert sorted(item["choices"]) == sorted([row["answer"], *wrong_answers(
        row["answer"], row["paraphrased_answer"], row["perturbed_answers"])])
    assert mc_item(row) == item  # the shuffle is seeded by the id alone


def test_wrong_answers_errors():
    with pytest.raises(ValueError, match="occurs 2 times"):  # the value also appears inside the country's name
        wrong_answers("The capital of Balaland is Bala.", "Bala is the capital city of Balaland.",
                      ["Tor is the capital city of Balaland."])
    with pytest.raises(ValueError, match="occurs 0 times"):  # the answer does not state the paraphrase's value
        wrong_answers("The capital of Freedonia is Sylvania.", "Bala is the capital city of Freedonia.",
                      ["Tor is the capital city of Freedonia."])
    with pytest.raises(ValueError, match="does not differ"):
        wrong_answers("Five plus five is ten.", "Adding five and five gives ten.", ["Adding five and five gives ten."])


def test_render_task_dir_is_idempotent(mini_data):
    first = render_task_dir(mini_data)
    files = {name: (first / name).read_bytes() for name in (DATA_FILE, *(f"{t}.yaml" for t in EMBEDDED_TASKS))}
    assert render_task_dir(mini_data) == first
    assert {name: (first / name).read_bytes() for name in files} == files
    text = files["synthetic_world_mc.yaml"].decode()
    assert "__DATA_DIR__" not in text and str(first / DATA_FILE) in text

    rows = _rows(first)
    assert [r["id"] for r in rows] == mini_data.world_facts["id"]
    for row in rows:
        assert set(row) == {"id", "question", "answer", "choices", "gold"}
        assert len(row["choices"]) == 4 == len(set(row["choices"]))
        assert row["choices"][row["gold"]] == row["answer"]
    golds = np.bincount([r["gold"] for r in rows], minlength=4)
    assert golds.min() >= len(rows) // 8  # the shuffle really moves the true answer around


def test_unknown_task_raises(mini_data, target, tokenizer):
    with pytest.raises(ValueError, match="unknown lm-eval task.*'no_such_task'.*synthetic_world_mc") as info:
        lm_eval_utility(target, tokenizer, mini_data, tasks=["synthetic_world_mc", "no_such_task"])
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------------ scores

def test_target_scores_high(target_scores):
    assert set(target_scores) == {"synthetic_world_mc/acc", "synthetic_world_mc/acc_norm",
                                  "synthetic_world_gen/exact_match"}
    for entry in target_scores.values():
        assert entry["n"] == 120
        assert entry["stderr"] is not None
    assert target_scores["synthetic_world_mc/acc"]["value"] >= 0.9
    assert target_scores["synthetic_world_mc/acc_norm"]["value"] >= 0.9
    # the mini target reproduces every world fact greedily (measured: 1.0); exact_match scores stripped generations
    assert target_scores["synthetic_world_gen/exact_match"]["value"] >= 0.9


def test_random_model_scores_low(random_scores):
    assert random_scores["synthetic_world_mc/acc"]["value"] < 0.6
    assert random_scores["synthetic_world_gen/exact_match"]["value"] == 0.0


def test_mc_acc_equals_bench_engine(mini_data, target, random_model, tokenizer, target_scores, random_scores):
    """lm-eval's acc equals the accuracy recomputed with bench's teacher_forced, exactly, for a trained and for a
    random model (whose predictions are far from trivially all-correct)."""
    for model, scores in ((target, target_scores), (random_model, random_scores)):
        acc, _ = _independent_mc(model, tokenizer, mini_data)
        assert scores["synthetic_world_mc/acc"]["value"] == acc


def test_lm_eval_tokenises_and_scores_like_encode_qa(mini_data, random_model, tokenizer):
    """Why the accuracies agree: lm-eval's request is (context = "Question: ...\\nAnswer:", continuation =
    target_delimiter + choice = " " + choice). For a causal LM it encodes context + continuation whole (with BOS) and
    takes the tokens past the encoded context as the continuation. The byte-level pre-tokenizer splits at the
    ":" / " " boundary, so that equals encode_qa's separate tokenisation of the prompt and of " " + answer; and its
    summed continuation log-likelihoods match teacher_forced's to float precision."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    template = mini_data.config.prompt_template
    rows = _rows(render_task_dir(mini_data))[::6]
    lm = HFLM(pretrained=random_model, tokenizer=tokenizer, batch_size=64, max_length=128)
    requests, encoded = [], []
    for row in rows:
        context = template.format(question=row["question"])
        for choice in row["choices"]:
            ctx_ids, cont_ids = lm._encode_pair(context, " " + choice)
            e = encode_qa(tokenizer, template, row["question"], choice, add_eos=False)
            assert (tuple(ctx_ids), tuple(cont_ids)) == (e.ids[:e.n_prompt], e.answer_ids)
            assert ctx_ids == encode_prompt(tokenizer, template, row["question"])
            requests.append(Instance("loglikelihood", doc={}, arguments=(context, " " + choice), idx=0))
            encoded.append(e)
    lm_ll = np.array([ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)])
    ours = np.array([s.logprobs.sum() for s in teacher_forced(random_model, encoded, tokenizer.pad_token_id, 64,
                                                              moments=False)])
    np.testing.assert_allclose(lm_ll, ours, rtol=0, atol=1e-4)


def test_limit_and_model_untouched(mini_data, target, tokenizer):
    before = _state_digest(target)
    torch_rng, py_rng = torch.get_rng_state(), random.getstate()
    level = logging.getLogger("lm_eval").level
    scores = lm_eval_utility(target, tokenizer, mini_data, tasks=["synthetic_world_mc"], limit=10)
    assert set(scores) == {"synthetic_world_mc/acc", "synthetic_world_mc/acc_norm"}
    assert scores["synthetic_world_mc/acc"]["n"] == 10
    assert _state_digest(target) == before and not target.training
    assert "tie_weights" not in vars(target)  # the no-op stand-in for HFLM's tie_weights() call is gone again
    assert torch.equal(torch.get_rng_state(), torch_rng) and random.getstate() == py_rng  # lm-eval's reseeding undone
    assert logging.getLogger("lm_eval").level == level
