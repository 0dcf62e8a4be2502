"""WMDP (Li et al. 2024, arXiv 2403.03218; hub datasets ``cais/wmdp``, MIT, and its corpora): multiple-choice
questions that proxy hazardous knowledge in biosecurity and cybersecurity, and for each domain a forget corpus (the
papers / texts the questions were written from) and a retain corpus (same field, keyword-filtered away from the
forget topics). MMLU (``cais/mmlu``, config ``all``) measures the utility that must survive.

Every dataset is read split by split at the pinned revision of the task YAML's ``params``:
``$UBENCH_HUB_MIRROR/<dataset>/<config>/<split>.json`` (JSON lines in the hub's schema) when present, else
``datasets.load_dataset(dataset, name=config, split=split, revision=revision)``; failing both, one
``HubUnavailableError`` line names the dataset, config, split and revision and how to get access (for the gated bio
forget corpus: WMDP's access request form).

Mapping to ``TaskData`` for forget split ``x`` in {bio, cyber}:

* ``forget_corpus`` = ``params.corpora.x.forget`` (``cais/wmdp-bio-forget-corpus``, whose ``text`` column is used
  and title / abstract / doi are dropped; ``cais/wmdp-corpora`` ``cyber-forget-corpus``), split ``train``: rows
  (``id`` = ``wmdp/x-forget/<hub row index:05d>``, ``text``), documents with blank text dropped. It *is* the
  unlearning request, and the target is trained on it, the oracle not.
* ``retain_corpus`` = ``params.corpora.x.retain`` (``x-retain-corpus``), ids ``wmdp/x-retain/<i>``.
* ``forget`` (the efficacy QA split) = ``cais/wmdp`` config ``wmdp-x``, split ``test``. A question with choices
  c_0..c_3 and gold index g becomes: question = q.strip() + "\\nA. c_0\\nB. c_1\\nC. c_2\\nD. c_3" (lm-eval's WMDP
  prompt body, so with the prompt template "{question}\\nAnswer:" the QA prompt is lm-eval's ``doc_to_text``);
  answer = c_g, the correct choice's *text*; perturbed_answers = the 3 other choices in their order; the
  paraphrased answer = the answer, so the truth ratio compares the wrong choices with the correct one:
  R = exp(NLL~(c_g) - mean_{j != g} NLL~(c_j)) = geometric mean of P~(c_j) / P~(c_g), P~ the length-normalised
  answer probability after the prompt (``bench.metrics.tofu.truth_ratio_raw``); no paraphrased questions
  (= question); a seeded "I don't know" answer; ``person`` = ``wmdp/x``.

  The answer is the choice text, not its letter, because the letter view is exactly the lm-eval accuracy the
  task also reports (below): with the text the QA metrics add what a letter cannot give, whether the model still
  assigns probability to and generates the hazardous *content* (a one-token letter makes ROUGE-L and the
  probability-based metrics a 4-way letter classifier), and the text is scored independently of the letter
  position the correct choice happens to sit at.
* ``retain`` (the utility QA split) = ``cais/mmlu`` ``all`` ``test`` mapped the same way (``person`` =
  ``mmlu/<subject>``, ``attribute`` = subject; ids ``mmlu/<i>``). With a retain corpus it is evaluated, not
  trained on.
* ``world_facts`` = None (MMLU is already the retain split; a second copy would only be scored twice), ``holdout``
  = None (no never-trained set, so no membership-inference metrics), no text splits.

Evaluation caps each QA split at ``eval.max_items`` (a fixed seeded subset). The numbers WMDP papers report are
zero-shot lm-eval letter accuracies on WMDP-Bio / -Cyber and MMLU: ``lm_eval_data("wmdp")`` below writes the rows
of the task's embedded lm-eval templates (``tasks/wmdp/lm_eval/``: ``wmdp_local_bio``, ``wmdp_local_cyber``,
``mmlu_local``, lm-eval's own prompt format) from the same pinned, mirrorable rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, load_dataset

from bench.data.hub import MIRROR_ENV, HubUnavailableError, mirror_file
from bench.data.lm_eval_files import lm_eval_data
from bench.data.schema import FEATURES, IDK_ANSWERS
from bench.data.tasks import TaskConfig, TaskData
from bench.registry import TASKS
from bench.specs.mapping import SpecError

DOMAINS = ("bio", "cyber")
LETTERS = ("A", "B", "C", "D")
QUESTION_SPLIT = "test"
CORPUS_SPLIT = "train"


@dataclass(frozen=True)
class HubSplitSource:
    """Where one dataset config lives on the hub: ``dataset`` (``owner/name``), ``config``, pinned ``revision``;
    ``gated`` when the hub asks for an access request before serving it."""

    dataset: str
    config: str
    revision: str
    gated: bool = False

    @classmethod
    def from_params(cls, value: Any, where: str) -> HubSplitSource:
        """From a YAML mapping ``{dataset, config, revision[, gated]}``; a malformed one is a ``SpecError``."""
        if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in ("dataset", "config",
                                                                                          "revision")):
            raise SpecError(f"{where}: expected a mapping with string dataset, config and revision, got {value!r}")
        return cls(value["dataset"], value["config"], value["revision"], bool(value.get("gated", False)))


def _access_hint(source: HubSplitSource) -> str:
    if source.gated:
        return (f"It is gated: request access with the WMDP access request form on its hub page "
                f"(https://huggingface.co/datasets/{source.dataset}), then log in with `huggingface-cli login` "
                f"and a network connection")
    return "Get access with `huggingface-cli login` and a network connection"


def load_split(source: HubSplitSource, split: str, who: str) -> Dataset:
    """Split ``split`` of ``source``: the mirror file ``$UBENCH_HUB_MIRROR/<dataset>/<config>/<split>.json`` (JSON
    lines) if present, else the hub (or its local cache) at the pinned revision; else one-line
    ``HubUnavailableError`` (``who`` names the asking task)."""
    local = mirror_file(source.dataset, f"{source.config}/{split}.json")
    if local is not None:
        return load_dataset("json", data_files=str(local), split="train")
    try:
        return load_dataset(source.dataset, name=source.config, split=split, revision=source.revision)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (connection, gated, not found, offline)
        text = str(exc).strip()
        reason = text.splitlines()[0][:200] if text else type(exc).__name__
        raise HubUnavailableError(
            f"{who}: cannot load hub dataset {source.dataset} (config {source.config}, split {split}, revision "
            f"{source.revision[:12]}): {reason}. {_access_hint(source)}, or copy the split to "
            f"${MIRROR_ENV}/{source.dataset}/{source.config}/{split}.json (JSON lines)") from exc


def mc_question(question: str, choices: Sequence[str]) -> str:
    """lm-eval's WMDP / MMLU prompt body: ``question.strip()``, then one ``"\\n<letter>. <choice>"`` per choice."""
    return question.strip() + "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, choices))


def _checked_choices(row: dict, row_id: str) -> tuple[list[str], int]:
    choices, gold = [str(c) for c in row["choices"]], int(row["answer"])
    if len(choices) != len(LETTERS) or not 0 <= gold < len(choices):
        raise ValueError(f"{row_id}: expected {len(LETTERS)} choices and an answer index in 0..3, got "
                         f"{len(choices)} choices and answer {gold}")
    return choices, gold


def mc_to_qa(rows: Iterable[dict], prefix: str, person: str | None, seed: int) -> Dataset:
    """Multiple-choice rows (question, choices, answer index[, subject]) -> QA rows of the task schema (see the
    module docstring): the correct choice's text as answer and paraphrased answer, the other choices as perturbed
    answers. ``person`` is the subject of every row, or None for ``mmlu/<subject>``."""
    rng = random.Random(f"{seed}/{prefix}")
    out = []
    for i, row in enumerate(rows):
        row_id = f"{prefix}/{i:05d}"
        choices, gold = _checked_choices(row, row_id)
        subject = str(row.get("subject") or "")
        out.append({
            "id": row_id, "person": person or f"mmlu/{subject}", "attribute": subject,
            "question": mc_question(row["question"], choices), "answer": choices[gold],
            "paraphrased_question": mc_question(row["question"], choices), "paraphrased_answer": choices[gold],
            "perturbed_answers": [c for j, c in enumerate(choices) if j != gold],
            "idk_answer": rng.choice(IDK_ANSWERS),
        })
    return Dataset.from_list(out, features=FEATURES)


def corpus_rows(rows: Iterable[dict], prefix: str) -> Dataset:
    """Corpus documents -> (``id`` = ``<prefix>/<hub row index:05d>``, ``text``), blank documents dropped."""
    ids, texts = [], []
    for i, row in enumerate(rows):
        text = row.get("text") or ""
        if text.strip():
            ids.append(f"{prefix}/{i:05d}")
            texts.append(text)
    return Dataset.from_dict({"id": ids, "text": texts})


@dataclass(frozen=True)
class WmdpSources:
    """The hub locations of one WMDP task, from its YAML ``params``."""

    questions: dict[str, HubSplitSource]  # domain -> cais/wmdp config wmdp-<domain>
    utility: HubSplitSource
    corpora: dict[str, dict[str, HubSplitSource]]  # domain -> forget / retain

    @classmethod
    def of(cls, config: TaskConfig) -> WmdpSources:
        where = f"task {config.name}: params"
        params = config.params
        questions = params.get("questions")
        if not isinstance(questions, dict) or not isinstance(questions.get("dataset"), str) \
                or not isinstance(questions.get("revision"), str):
            raise SpecError(f"{where}.questions: expected a mapping with string dataset and revision")
        corpora = params.get("corpora")
        if not isinstance(corpora, dict):
            raise SpecError(f"{where}.corpora: expected a mapping of forget split -> forget / retain")
        return cls(
            questions={d: HubSplitSource(questions["dataset"], f"wmdp-{d}", questions["revision"]) for d in DOMAINS},
            utility=HubSplitSource.from_params(params.get("utility"), f"{where}.utility"),
            corpora={d: {side: HubSplitSource.from_params((corpora.get(d) or {}).get(side),
                                                          f"{where}.corpora.{d}.{side}")
                         for side in ("forget", "retain")} for d in config.forget_splits})


@TASKS.register("wmdp")
def load_wmdp(config: TaskConfig, split: str) -> TaskData:
    """Load WMDP forget split ``split`` (bio or cyber) at the task's pinned revisions (see the module docstring)."""
    if split not in DOMAINS:
        raise SpecError(f"task {config.name}: WMDP forget split must be one of {', '.join(DOMAINS)}, got {split!r}")
    sources, who = WmdpSources.of(config), f"task {config.name}"
    seed = int(config.params.get("seed", 0))
    forget = mc_to_qa(load_split(sources.questions[split], QUESTION_SPLIT, who), f"wmdp/{split}", f"wmdp/{split}",
                      seed)
    retain = mc_to_qa(load_split(sources.utility, QUESTION_SPLIT, who), "mmlu", None, seed)
    corpora = sources.corpora[split]
    forget_corpus = corpus_rows(load_split(corpora["forget"], CORPUS_SPLIT, who), f"wmdp/{split}-forget")
    retain_corpus = corpus_rows(load_split(corpora["retain"], CORPUS_SPLIT, who), f"wmdp/{split}-retain")
    return TaskData(config=config, split=split, forget=forget, retain=retain, holdout=None, world_facts=None,
                    forget_corpus=forget_corpus, retain_corpus=retain_corpus)


# the scored splits (``bench.data.tasks.family_splits``: their metrics' versions enter the run ids)
load_wmdp.eval_splits = ("forget", "retain")


def _hub_mc_rows(rows: Dataset, with_subject: bool) -> list[dict]:
    """Rows of an lm-eval data file, in the hub's schema (question, [subject,] choices, answer index)."""
    keys = ("question", "subject", "choices", "answer") if with_subject else ("question", "choices", "answer")
    return [{k: row[k] for k in keys} for row in rows]


@lm_eval_data("wmdp")
def lm_eval_files(data: TaskData) -> dict[str, list[dict]]:
    """The data of the embedded lm-eval templates: ``wmdp_bio.jsonl`` and ``wmdp_cyber.jsonl`` (every ``cais/wmdp``
    test question of the domain) and ``mmlu.jsonl`` (every ``cais/mmlu`` test question), read like the task's
    splits (mirror or hub at the pinned revision) and written verbatim, in hub order, whichever the forget split."""
    sources, who = WmdpSources.of(data.config), f"task {data.config.name}"
    files = {f"wmdp_{d}.jsonl": _hub_mc_rows(load_split(sources.questions[d], QUESTION_SPLIT, who), False)
             for d in DOMAINS}
    files["mmlu.jsonl"] = _hub_mc_rows(load_split(sources.utility, QUESTION_SPLIT, who), True)
    return files
