"""The MUSE task family on local fixture files in the hub's schema, with the hub unreachable: every forget split's
mapping to the task schema, one micro evaluation (KnowMem, VerbMem, PrivLeak on the privleak documents), the
sustainability folds as sequential requests, the one-line error without hub or mirror, MUSE-Books, and a tiny
end-to-end sequential run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data.hub import MIRROR_ENV, HubUnavailableError
from bench.data.schema import IDK_ANSWERS
from bench.data.tasks import load_task

from .test_tofu import tiny_llama

NEWS, BOOKS = "muse-bench/MUSE-News", "muse-bench/MUSE-Books"
TOWNS = ["Brindlemoor", "Castleford Vale", "Ashcombe", "Harrowgate", "Penmarrow", "Oakhurst", "Silverdene",
         "Thornbury", "Wexcombe", "Larkspur Bay", "Kestrel Point", "Fenwick", "Glenmoor", "Rookhaven", "Marbeck",
         "Dunholt", "Elmsworth", "Yarrowby", "Quornby", "Hollins Cross", "Bramblewick"]
EVENTS = ["lantern festival", "rowing regatta", "cheese fair", "kite contest", "harvest parade", "choir gala"]
FOLDS, PER_FOLD = 4, 3  # sust folds of 3 articles; raw/forget = scal/forget_1 = sust/forget_1


def article(i: int) -> str:
    """A short fake news article about town i (its answers: the town, the event, the visitor count)."""
    town, event = TOWNS[i], EVENTS[i % len(EVENTS)]
    return (f"The {event} in {town} drew {120 + 37 * i} visitors on Saturday. Organiser Mara Quill{i} said the "
            f"{event} raised money for the {town} library. A second {event} is planned for next spring.")


def knowmem(ids: range) -> list[dict]:
    rows = []
    for i in ids:
        rows.append({"question": f"Which event drew {120 + 37 * i} visitors?",
                     "answer": f"The {EVENTS[i % len(EVENTS)]} in {TOWNS[i]}."})
        rows.append({"question": f"Who organised the {EVENTS[i % len(EVENTS)]} in {TOWNS[i]}?",
                     "answer": f"Mara Quill{i}."})
    return rows


def write_muse_fixture(root: Path, dataset: str = NEWS, folds: bool = True) -> Path:
    """A miniature MUSE in the hub's configs, splits and columns, one JSON-lines file per (config, split):
    articles 0..11 are the forget pool (raw/forget = articles 0..2), 12..14 retain1, 15..17 retain2 (its
    KnowMem QA) and 18..20 the never-trained holdout; ``folds`` adds scal (growing) and sust (disjoint)."""
    forget = [article(i) for i in range(FOLDS * PER_FOLD)]
    retain1, retain2 = [article(i) for i in range(12, 15)], [article(i) for i in range(15, 18)]
    holdout = [article(i) for i in range(18, 21)]  # same style, never trained
    text = lambda texts: [{"text": t} for t in texts]  # noqa: E731
    files: dict[str, list[dict]] = {
        "raw/forget": text(forget[:PER_FOLD]), "raw/retain1": text(retain1), "raw/retain2": text(retain2),
        "raw/holdout": text(holdout),
        "verbmem/forget": [{"prompt": a[:40], "gt": a[40:]} for a in forget[:PER_FOLD]],
        "knowmem/forget_qa": knowmem(range(PER_FOLD)), "knowmem/retain_qa": knowmem(range(15, 18)),
        "knowmem/forget_qa_icl": knowmem(range(1)), "knowmem/retain_qa_icl": knowmem(range(15, 16)),
        "privleak/forget": text(forget[:PER_FOLD]), "privleak/retain": text(retain2),
        "privleak/holdout": text(holdout),
    }
    if folds:
        for k in range(1, FOLDS + 1):
            files[f"scal/forget_{k}"] = text(forget[: k * PER_FOLD])
            files[f"sust/forget_{k}"] = text(forget[(k - 1) * PER_FOLD: k * PER_FOLD])
    for name, rows in files.items():
        path = root / dataset / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def muse_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root = write_muse_fixture(tmp_path / "mirror")
    write_muse_fixture(root, BOOKS, folds=False)
    monkeypatch.setenv(MIRROR_ENV, str(root))
    return tmp_path


@pytest.fixture
def news_forget(muse_mirror: Path):
    return load_task("muse_news", "forget")


def test_every_forget_split_maps_to_the_task_schema(muse_mirror: Path) -> None:
    corpus_sizes = {"forget": 3, "scal_1": 3, "scal_2": 6, "scal_3": 9, "scal_4": 12, "sust": 12}
    targets = set()
    for split, size in corpus_sizes.items():
        data = load_task("muse_news", split)
        assert len(data.forget_corpus) == size and len(data.retain_corpus) == 3
        assert len(data.forget) == 6 and len(data.retain) == 6 and data.forget[0]["perturbed_answers"] == []
        assert data.forget[0]["paraphrased_answer"] == data.forget[0]["answer"]
        assert data.holdout is None and data.world_facts is None and data.retain_bio is None
        assert list(data.eval_splits()) == ["forget", "retain", "forget_bio", "mia_forget", "mia_holdout"]
        # the corpus, not the KnowMem QA, is the request: raw documents with the first refusal
        pairs = data.unlearning_pairs("forget")
        assert pairs == [(None, text, IDK_ANSWERS[0]) for text in data.forget_corpus["text"]]
        assert [a for _, a, _ in data.unlearning_pairs("retain")] == data.retain_corpus["text"]
        # one target for every split (12 forget-pool articles + retain1 + retain2); the oracle lacks this split's
        target, oracle = data.target_train, data.oracle_train
        assert len(target) == 18 and set(data.forget_corpus["text"]) <= set(target["answer"])
        assert not set(data.forget_corpus["text"]) & set(oracle["answer"]) and len(oracle) == 18 - size
        assert set(data.retain_corpus["text"]) <= set(oracle["answer"]) and set(oracle["question"]) == {None}
        targets.add(tuple(target["id"]))
    assert targets == {tuple(target["id"])}
    assert data.forget_corpus["id"][0] == "muse-news/sust/forget_1/00000"


def test_verbmem_and_privleak_rows(news_forget) -> None:
    bio = news_forget.forget_bio[0]
    assert bio["question"] is None and bio["id"] == "muse-news/verbmem/forget/00000"
    assert bio["text"] == f"{bio['prefix']} {bio['continuation']}" and article(0).startswith(bio["prefix"])
    assert news_forget.mia_forget[0] == {"id": "muse-news/privleak/forget/00000", "question": None,
                                         "answer": article(0)}
    assert len(news_forget.mia_holdout) == 3 and news_forget.forget_corpus["id"][0] == "muse-news/raw/forget/00000"


def test_muse_micro_evaluation(news_forget) -> None:
    """A tiny random Llama: KnowMem on both QA sides, VerbMem on the excerpts, the MIA AUCs and PrivLeak on the
    privleak documents (0 against itself), and no truth ratio, forget quality or model utility."""
    from bench.metrics.evaluate import SELF, evaluate
    from bench.models.tiny import _task_texts, train_tokenizer

    tokenizer = train_tokenizer(_task_texts(news_forget), 400)
    metrics = evaluate(tiny_llama(tokenizer), tokenizer, news_forget, SELF, gradnorm=True).metrics
    for key in ("forget/knowmem", "retain/knowmem", "forget_bio/verbmem", "mia_forget/mia_loss",
                "mia_holdout/mia_zlib", "mia_forget/mia_gradnorm", "mia_forget/mia_gradnorm_l2", "mia_auc_loss",
                "mia_auc_minkpp", "mia_auc_gradnorm", "mia_auc_gradnorm_l2"):
        assert key in metrics, key
    for score in ("loss", "zlib", "mink", "minkpp", "gradnorm", "gradnorm_l2"):
        assert metrics[f"privleak_{score}"].value == 0.0  # its own reference
    assert metrics["forget_bio/verbmem"].n == 3 and metrics["mia_auc_loss"].split == ""
    assert not any("truth_ratio" in k or k.startswith("holdout/") for k in metrics)
    assert "forget_quality" not in metrics and "model_utility" not in metrics


def test_sustainability_folds_are_four_requests(muse_mirror: Path) -> None:
    from bench.run.sequential import request_groups, request_subjects

    data = load_task("muse_news", "sust")
    subjects = request_subjects(data)
    groups = request_groups(data, 4)
    assert [sorted({subjects[i] for i in g}) for g in groups] == [[f"sust_{k}"] for k in range(1, 5)]
    assert [len(g) for g in groups] == [3, 3, 3, 3]
    assert len(request_groups(load_task("muse_news", "scal_2"), 2)[0]) == 3  # no folds: each document a subject


def test_unreachable_hub_without_mirror_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    import huggingface_hub.constants

    # offline without waiting for network retries (the flags are read at import time)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(HubUnavailableError) as info:
        load_task("muse_news", "forget")
    message = str(info.value)
    assert "\n" not in message
    assert ("task muse_news: cannot load hub dataset muse-bench/MUSE-News (config knowmem, split forget_qa, "
            "revision 928543ace378)") in message
    assert "huggingface-cli login" in message and f"${MIRROR_ENV}/muse-bench/MUSE-News/" in message
    assert "knowmem/forget_qa.json" in message


def test_muse_books_loads(muse_mirror: Path) -> None:
    data = load_task("muse_books", "forget")
    assert data.forget_corpus["id"][0] == "muse-books/raw/forget/00000" and len(data.forget_corpus) == 3
    assert len(data.target_train) == 9 and len(data.oracle_train) == 6  # forget + retain1 + retain2; no folds
    assert len(data.eval_splits()["mia_forget"]) == 3


MICRO_TASK = """name: muse-micro
version: 1
family: muse
params: {dataset: muse-bench/MUSE-News, revision: 928543ace3784ccce8cec389f6e4e771308188b2, seed: 0}
forget_splits: [forget, sust]
prompt_template: "Question: {question}\\nAnswer:"
eval: {max_items: 100, max_new_tokens: 8, batch_size: 16, max_new_tokens_text: 16}
model: {vocab_size: 400, hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, epochs: 3, lr: 0.005,
        batch_size: 8}
"""


def test_sequential_sustainability_run(muse_mirror: Path, monkeypatch: pytest.MonkeyPatch, store) -> None:
    """A tiny target trained on the fixture, then the four sust folds unlearned one after the other."""
    from bench.run.execute import execute
    from bench.run.runspec import make_run_spec
    from bench.specs.run import Budget

    tasks = muse_mirror / "tasks"
    tasks.mkdir()
    (tasks / "micro.yaml").write_text(MICRO_TASK)
    monkeypatch.setenv("UBENCH_TASKS", str(tasks))
    monkeypatch.setenv("UBENCH_CACHE", str(muse_mirror / "cache"))
    spec = make_run_spec("muse-micro", "sust", "ga", {}, Budget(steps=1, lr=5e-4, batch_size=2), seed=0,
                         requests=4)
    record = execute(spec, store)
    assert record.ok, record.error
    history = record.extra["sequential"]
    assert [h["subjects"] for h in history] == [[f"sust_{k}"] for k in range(1, 5)]
    assert {"forget/knowmem", "forget_bio/verbmem"} <= set(history[-1]["metrics"])
    assert {"privleak_loss", "privleak_gradnorm", "retain/knowmem"} <= set(record.metrics)
