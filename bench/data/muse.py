"""MUSE (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language Models", arXiv 2407.06460;
hub datasets ``muse-bench/MUSE-News`` (BBC articles) and ``muse-bench/MUSE-Books`` (the Harry Potter novels),
CC-BY-4.0 data cards). Each hub dataset has configs (subsets) with named splits: ``raw`` (forget, retain1, retain2,
holdout: column ``text``), ``verbmem`` (forget: ``prompt``, ``gt``), ``knowmem`` (forget_qa, retain_qa and their
``_icl`` few-shot sets: ``question``, ``answer``), ``privleak`` (forget, retain, holdout: ``text``) and, News only,
``scal`` and ``sust`` (forget_1 .. forget_4: ``text``).

Mapping to ``TaskData`` (ids ``<dataset>/<config>/<split>/<index>``, e.g. ``muse-news/raw/forget/00000``):

* ``forget_corpus`` = the unlearning request, as in MUSE: ``raw/forget`` for the ``forget`` split; for the
  scalability splits ``scal_k`` (k = 1..4) ``scal/forget_k`` (growing forget sets, forget_k contains forget_k-1);
  for the sustainability split ``sust`` the four pairwise disjoint ``sust/forget_1 .. forget_4`` in order, with
  ``person`` = ``sust_1`` .. ``sust_4``, so a run with ``requests: 4`` unlearns them as four successive requests
  (``bench.run.sequential.request_groups`` groups a forget corpus by its ``person`` column);
* ``retain_corpus`` = ``raw/retain1``: MUSE's regulariser set (the retain request);
* ``train_corpus`` = what the target is trained on (MUSE's target saw every forget set and both retain sets):
  every forget set of the task's forget splits (in the YAML's order), ``raw/retain1`` and ``raw/retain2``, each
  distinct text once under the id of its first occurrence. The target is therefore the same for every forget split
  and the retain oracle of a split is it without that split's forget corpus (``TaskData.oracle_train``);
* ``forget`` = ``knowmem/forget_qa`` and ``retain`` = ``knowmem/retain_qa`` (questions about ``raw/forget`` and
  ``raw/retain2``) as QA rows with no perturbed answers (paraphrased answer = answer, paraphrased question =
  question, a seeded "I don't know" answer): the engine scores them on answers and generations only, so KnowMem
  (ROUGE-L of the greedy answer) is computed and the truth ratio, forget quality and model utility are left out;
* ``forget_bio`` = ``verbmem/forget`` as a text split: ``question`` None (a BOS-only prompt), ``prefix`` =
  ``prompt``, ``continuation`` = ``gt``, ``text`` = prefix + " " + continuation, so ``forget_bio/verbmem`` is MUSE's
  VerbMem (ROUGE-L F1 of the greedy continuation of the prompt against gt; ``eval.max_new_tokens_text`` = 128 is
  MUSE's continuation length);
* ``mia_forget`` / ``mia_holdout`` = ``privleak/forget`` / ``privleak/holdout`` (members / never-trained documents,
  question None, answer = the text): the MIA AUCs and PrivLeak = (AUC - AUC_oracle) / AUC_oracle * 100 compare them,
  as MUSE's PrivLeak does (``bench.metrics.privacy``);
* ``holdout``, ``world_facts``, ``retain_bio``, ``retain_eval`` and ``real_authors``: None (MUSE has no QA holdout,
  no general-knowledge QA and no retain texts scored by VerbMem).

The same KnowMem QA, VerbMem excerpts and PrivLeak documents (all drawn from ``raw/forget``, which equals
``scal/forget_1`` and ``sust/forget_1`` on the hub) are scored whatever the forget split.
"""

from __future__ import annotations

import random

from datasets import Dataset, Features, Value

from bench.data.hub import load_hub_split
from bench.data.schema import BIO_FEATURES, FEATURES, IDK_ANSWERS
from bench.data.tasks import TaskConfig, TaskData
from bench.registry import TASKS
from bench.specs.mapping import SpecError

SCAL_FOLDS = 4
SUST_FOLDS = 4
# forget split -> the (config, hub split) pairs whose documents form its forget corpus, in order
FORGET_SETS: dict[str, tuple[tuple[str, str], ...]] = {
    "forget": (("raw", "forget"),),
    **{f"scal_{k}": (("scal", f"forget_{k}"),) for k in range(1, SCAL_FOLDS + 1)},
    "sust": tuple(("sust", f"forget_{k}") for k in range(1, SUST_FOLDS + 1)),
}
RETAIN_SET = ("raw", "retain1")  # MUSE's regulariser set: the retain request
OTHER_TRAINED = (("raw", "retain2"),)  # trained into the target and every oracle, in no request (KnowMem's retain)
MIA_FEATURES = Features({"id": Value("string"), "question": Value("string"), "answer": Value("string")})


class _Loader:
    """Reads (config, split) pairs of one hub dataset at the task's revision, once each."""

    def __init__(self, config: TaskConfig) -> None:
        self.dataset, self.revision = config.params["dataset"], config.params["revision"]
        self.source = f"task {config.name}"
        self.slug = self.dataset.rsplit("/", 1)[-1].lower()  # muse-bench/MUSE-News -> muse-news
        self._cache: dict[tuple[str, str], Dataset] = {}

    def get(self, config: str, split: str) -> Dataset:
        if (config, split) not in self._cache:
            self._cache[config, split] = load_hub_split(self.dataset, config, split, self.revision, self.source)
        return self._cache[config, split]

    def prefix(self, config: str, split: str) -> str:
        return f"{self.slug}/{config}/{split}"


def corpus(load: _Loader, parts: tuple[tuple[str, str], ...], person: bool) -> Dataset:
    """Documents of ``parts`` in order: ``id``, ``text`` and, when ``person``, ``person`` = the fold of the document
    (``<config>_<k>`` for split ``forget_k``: ``sust_1`` .. ``sust_4``)."""
    columns: dict[str, list[str]] = {"id": [], "text": [], "person": []}
    for config, split in parts:
        texts = load.get(config, split)["text"]
        columns["id"] += [f"{load.prefix(config, split)}/{i:05d}" for i in range(len(texts))]
        columns["text"] += texts
        columns["person"] += [f"{config}_{split.removeprefix('forget_')}"] * len(texts)
    if not person:
        del columns["person"]
    return Dataset.from_dict(columns, features=Features({name: Value("string") for name in columns}))


def train_corpus(load: _Loader, forget_splits: tuple[str, ...]) -> Dataset:
    """Every document the target is trained on: the forget sets of ``forget_splits`` (in order), the retain set and
    ``OTHER_TRAINED``, each distinct text once, under the id of its first occurrence (``id``, ``text``)."""
    parts = [part for split in forget_splits for part in FORGET_SETS[split]]
    parts += [RETAIN_SET, *OTHER_TRAINED]
    first: dict[str, str] = {}
    for config, split in dict.fromkeys(parts):
        for i, text in enumerate(load.get(config, split)["text"]):
            first.setdefault(text, f"{load.prefix(config, split)}/{i:05d}")
    return Dataset.from_dict({"id": list(first.values()), "text": list(first)},
                             features=Features({"id": Value("string"), "text": Value("string")}))


def qa_schema(rows: Dataset, prefix: str, person: str, seed: int) -> Dataset:
    """KnowMem (question, answer) rows -> the QA schema: no perturbed answers, the answer as its own paraphrase,
    the question as its own paraphrase, and a seeded "I don't know" answer."""
    rng = random.Random(f"{seed}/{prefix}")
    return Dataset.from_list([{
        "id": f"{prefix}/{i:05d}", "person": person, "attribute": "", "question": row["question"],
        "answer": row["answer"], "paraphrased_question": row["question"], "paraphrased_answer": row["answer"],
        "perturbed_answers": [], "idk_answer": rng.choice(IDK_ANSWERS),
    } for i, row in enumerate(rows)], features=FEATURES)


def verbmem_schema(rows: Dataset, prefix: str, person: str, seed: int) -> Dataset:
    """VerbMem (prompt, gt) rows -> a text split: question None (BOS-only prompt), prefix = the prompt (trailing
    whitespace removed), continuation = gt (surrounding whitespace removed), text = prefix + " " + continuation."""
    rng = random.Random(f"{seed}/{prefix}")
    out = []
    for i, row in enumerate(rows):
        head, tail = row["prompt"].rstrip(), row["gt"].strip()
        out.append({"id": f"{prefix}/{i:05d}", "person": person, "question": None, "text": f"{head} {tail}",
                    "prefix": head, "continuation": tail, "idk_answer": rng.choice(IDK_ANSWERS)})
    return Dataset.from_list(out, features=BIO_FEATURES)


def mia_schema(rows: Dataset, prefix: str) -> Dataset:
    """PrivLeak documents -> MIA rows: ``id``, ``question`` None (a raw document), ``answer`` = the text."""
    return Dataset.from_list([{"id": f"{prefix}/{i:05d}", "question": None, "answer": text}
                              for i, text in enumerate(rows["text"])], features=MIA_FEATURES)


@TASKS.register("muse")
def load_muse(config: TaskConfig, split: str) -> TaskData:
    """Load MUSE-News or MUSE-Books at the task's pinned revision (``params.dataset``, ``params.revision``)."""
    if split not in FORGET_SETS:
        raise SpecError(f"task {config.name}: MUSE forget split must be one of {', '.join(FORGET_SETS)}, "
                        f"got {split!r}")
    unknown = [s for s in config.forget_splits if s not in FORGET_SETS]
    if unknown:
        raise SpecError(f"task {config.name}: forget_splits: unknown MUSE split(s) {', '.join(unknown)} "
                        f"(known: {', '.join(FORGET_SETS)})")
    load, seed = _Loader(config), int(config.params.get("seed", 0))
    forget_subject, retain_subject = load.prefix("raw", "forget"), load.prefix("raw", "retain2")
    return TaskData(
        config=config, split=split, holdout=None, world_facts=None,
        forget=qa_schema(load.get("knowmem", "forget_qa"), load.prefix("knowmem", "forget_qa"), forget_subject, seed),
        retain=qa_schema(load.get("knowmem", "retain_qa"), load.prefix("knowmem", "retain_qa"), retain_subject, seed),
        forget_bio=verbmem_schema(load.get("verbmem", "forget"), load.prefix("verbmem", "forget"), forget_subject,
                                  seed),
        forget_corpus=corpus(load, FORGET_SETS[split], person=split == "sust"),
        retain_corpus=corpus(load, (RETAIN_SET,), person=False),
        train_corpus=train_corpus(load, config.forget_splits),
        mia_forget=mia_schema(load.get("privleak", "forget"), load.prefix("privleak", "forget")),
        mia_holdout=mia_schema(load.get("privleak", "holdout"), load.prefix("privleak", "holdout")))


# the scored splits (``bench.data.tasks.family_splits``: their metrics' versions enter the run ids)
load_muse.eval_splits = ("forget", "retain", "forget_bio", "mia_forget", "mia_holdout")
