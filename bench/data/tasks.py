"""Declarative tasks: a YAML file per task under ``tasks/`` names its family, version, splits and model recipe.

A task *family* is Python code registered in ``bench.registry.TASKS`` (``@TASKS.register("synthetic")``) that turns
a ``TaskConfig`` and a forget split into ``TaskData``: the forget, retain, holdout and utility datasets.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.data.schema import IDK_ANSWERS
from bench.data.splits import FAMILY_SPLITS, SPLITS
from bench.registry import TASKS, RegistryError
from bench.runtime.paths import tasks_dir
from bench.specs.mapping import SpecError, content_hash, from_mapping, read_yaml
from bench.specs.papers import Paper

CITATION_FIELDS = ("papers",)  # task YAML fields outside the digest (``citation``, older, stays inside it)

if TYPE_CHECKING:  # the datasets library loads where a task's data is built, not where its config is read
    from datasets import Dataset


@dataclass(frozen=True)
class EvalConfig:
    """How a model is scored on this task: at most ``max_items`` items per split (a fixed seeded subset)."""

    max_items: int = 200
    max_new_tokens: int = 24
    batch_size: int = 64
    max_new_tokens_text: int = 80  # greedy continuation length of the text splits (VerbMem)

    def __post_init__(self) -> None:
        for name in ("max_items", "max_new_tokens", "batch_size", "max_new_tokens_text"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class TinyModelConfig:
    """Recipe of the small causal LM trained from scratch on the task (target and retain oracle)."""

    architecture: str = "llama"
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    epochs: int = 24
    lr: float = 3e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture != "llama":
            raise ValueError(f"architecture: only 'llama' is supported, got {self.architecture!r}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "epochs",
                     "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size: must be divisible by num_heads")


@dataclass(frozen=True)
class TaskConfig:
    name: str
    version: int
    family: str
    forget_splits: tuple[str, ...]
    prompt_template: str
    params: dict[str, Any] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    description: str = ""
    citation: str = ""
    license: str = ""
    # lm-eval tasks run on every evaluated model (real-world utility): the task's embedded offline YAMLs, or any
    # lm-eval task name (mmlu, arc_easy, wmdp_bio, ...) for users with hub access
    lm_eval_tasks: tuple[str, ...] = ()
    # the papers of the benchmark (BibTeX entries ``ubench cite`` prints for the task family)
    papers: tuple[Paper, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def digest(self) -> str:
        """Hash of everything in the YAML that can change a number (``papers`` cannot: left out, so adding a
        citation keeps the task's model and run ids)."""
        return content_hash({k: v for k, v in dataclasses.asdict(self).items() if k not in CITATION_FIELDS})


def family_splits(config: TaskConfig) -> tuple[str, ...]:
    """The scored splits the task's family declares (``bench.data.splits.FAMILY_SPLITS``, read without importing the
    family: run and reference ids need them, ``bench.metrics.identity``); every split of ``SPLITS`` for a family
    not listed there (an out-of-tree family), so the ids cover too many metrics rather than too few."""
    return FAMILY_SPLITS.get(config.family, SPLITS)


@dataclass
class TaskData:
    """The datasets of one (task, forget split). Every QA row has ``id``, ``question``, ``answer``,
    ``paraphrased_answer``, ``perturbed_answers`` and ``idk_answer``. ``forget_bio`` / ``retain_bio`` (optional)
    are free-text documents of the forget / retain subjects with ``id``, ``question`` (the prompt that asks for the
    text), ``text`` = ``prefix`` + " " + ``continuation`` and ``idk_answer``: the verbatim-memorization corpus."""

    config: TaskConfig
    split: str
    forget: Dataset
    retain: Dataset
    holdout: Dataset | None  # never-trained subjects (MIA non-members); None where the benchmark has none (TOFU)
    world_facts: Dataset | None  # general-knowledge QA (utility); None where the benchmark has none (MUSE)
    forget_bio: Dataset | None = None
    retain_bio: Dataset | None = None
    # where a benchmark evaluates retain on its own set (TOFU's retain_perturbed) rather than on the retain set the
    # unlearning regulariser samples from
    retain_eval: Dataset | None = None
    real_authors: Dataset | None = None  # TOFU's second utility set
    # item id -> the item's question reaching its subject through another fact (multi-hop / alias: "the author of
    # The <title>" instead of the name), for the forget and retain items: what the ``indirect`` attack asks; None
    # where the task supplies none (a task family fills it from its own data)
    indirect_questions: dict[str, str] | None = None
    # raw training corpora (``id``, ``text``) where the benchmark's unlearning request is a corpus rather than its
    # evaluation QA (MUSE's news / books, WMDP's forget corpora): when set, a corpus replaces the QA and texts of its
    # side in the forget / retain request and in the target / oracle training sets
    forget_corpus: Dataset | None = None
    retain_corpus: Dataset | None = None
    # every document the target is trained on, where the benchmark's target saw more than the forget and retain
    # requests (MUSE: all of its forget sets and both retain sets). When set, the target trains on it whatever the
    # forget split (one target per task, as ``bench.models.tiny.model_key`` assumes) and the oracle on it without
    # the documents whose text is in ``forget_corpus``
    train_corpus: Dataset | None = None
    # membership-inference texts where the benchmark scores MIA on documents rather than on its QA (MUSE's privleak
    # forget / holdout): rows ``id``, ``question`` (None: a raw document, BOS-only prompt) and ``answer`` (the text),
    # scored on the answer's likelihood only. When both are set, the MIA AUCs and PrivLeak compare them
    # (``bench.metrics.privacy.membership_splits``) instead of the forget and holdout QA
    mia_forget: Dataset | None = None
    mia_holdout: Dataset | None = None

    @staticmethod
    def _qa(*parts: Dataset | None) -> Dataset:
        """(id, question, answer) rows of QA sets and text sets (a text is the answer to its prompt), by id."""
        rows: dict[str, list] = {"id": [], "question": [], "answer": []}
        for ds in parts:
            if ds is None:
                continue
            rows["id"] += ds["id"]
            # a corpus document has no prompt (question None: BOS, then the text)
            rows["question"] += ds["question"] if "question" in ds.column_names else [None] * len(ds)
            rows["answer"] += ds["answer"] if "answer" in ds.column_names else ds["text"]
        dataset = type(next(ds for ds in parts if ds is not None))  # the parts' class: this module imports no datasets
        return dataset.from_dict(rows).sort("id")

    def _side(self, which: str) -> tuple[Dataset | None, ...]:
        """What was trained about the forget / retain side: its corpus if the benchmark has one, else QA + texts."""
        corpus = self.forget_corpus if which == "forget" else self.retain_corpus
        if corpus is not None:
            return (corpus,)
        return (self.forget, self.forget_bio) if which == "forget" else (self.retain, self.retain_bio)

    @property
    def target_train(self) -> Dataset:
        """What the target model is trained on: every trained person's QA and text (or ``train_corpus``), and the
        world facts, in id order, so the target is the same model whichever forget split asked for it."""
        if self.train_corpus is not None:
            return self._qa(self.train_corpus, self.world_facts)
        return self._qa(*self._side("retain"), *self._side("forget"), self.world_facts)

    @property
    def oracle_train(self) -> Dataset:
        """What the retain oracle is trained on: the target's data without the forget set (with a
        ``train_corpus``: without its documents whose text is a forget corpus document)."""
        if self.train_corpus is not None:
            forgotten = set(self.forget_corpus["text"]) if self.forget_corpus is not None else set()
            texts = self.train_corpus["text"]
            kept = self.train_corpus.select([i for i, text in enumerate(texts) if text not in forgotten])
            return self._qa(kept, self.world_facts)
        return self._qa(*self._side("retain"), self.world_facts)

    def unlearning_pairs(self, which: str) -> list[tuple[str, str, str]]:
        """(question, answer, idk answer) of the ``forget`` or ``retain`` request: its QA items, then its texts.
        A forget request covers everything trained about its subjects; where the benchmark has a corpus, the request
        is the corpus (question None: the raw document) with the task's first "I don't know" answer as refusal."""
        corpus = self.forget_corpus if which == "forget" else self.retain_corpus
        if corpus is not None:
            idk = corpus["idk_answer"] if "idk_answer" in corpus.column_names else [IDK_ANSWERS[0]] * len(corpus)
            return list(zip([None] * len(corpus), corpus["text"], idk))
        qa, text = (self.forget, self.forget_bio) if which == "forget" else (self.retain, self.retain_bio)
        pairs = list(zip(qa["question"], qa["answer"], qa["idk_answer"]))
        if text is not None:
            pairs += list(zip(text["question"], text["text"], text["idk_answer"]))
        return pairs

    def _scored(self) -> dict[str, Dataset | None]:
        """Every split of ``SPLITS`` in that order, None where the task has none."""
        retain = self.retain_eval if self.retain_eval is not None else self.retain
        return {name: retain if name == "retain" else getattr(self, name) for name in SPLITS}

    def split_names(self) -> tuple[str, ...]:
        """The names of the scored splits this task has (``eval_splits``' keys, without building the subsets)."""
        return tuple(name for name, ds in self._scored().items() if ds is not None)

    def eval_splits(self) -> dict[str, Dataset]:
        """The scored splits, each capped at ``eval.max_items`` by a fixed seeded subset (as TOFU caps at 300).

        ``holdout`` (the never-trained people's QA) is the non-member set of the membership-inference metrics
        (MUSE, Shi et al. 2024), or ``mia_forget`` / ``mia_holdout`` where the benchmark has its own MIA texts.
        Splits are only ever appended (``bench.data.splits.SPLITS``): the subset seed of a split is its position, so
        the items of earlier splits never change when a split is added."""
        return {name: _subset(ds, self.config.eval.max_items, seed=i)
                for i, (name, ds) in enumerate(self._scored().items()) if ds is not None}


def _subset(ds: Dataset, n: int, seed: int) -> Dataset:
    if len(ds) <= n:
        return ds
    return ds.select(sorted(random.Random(seed).sample(range(len(ds)), n)))


@cache
def _task_index(root: str) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in sorted(Path(root).rglob("*.yaml")):
        name = read_yaml(path).get("name")
        if isinstance(name, str):
            if name in index:
                raise SpecError(f"{path}: name: task {name!r} is already defined in {index[name]}")
            index[name] = path
    return index


def task_names() -> list[str]:
    return sorted(_task_index(str(tasks_dir())))


def read_task_config(name: str) -> TaskConfig:
    """The ``TaskConfig`` of task ``name`` (``name`` or ``name@version``), or of a YAML file path, without checking its
    family (which imports every task family: ``load_task_config``). What ids and reference ids need; a board rebuild
    reads only this."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
    else:
        base, _, version = name.partition("@")
        index = _task_index(str(tasks_dir()))
        if base not in index:
            close = difflib.get_close_matches(base, list(index), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"unknown task {base!r}{hint} (known: {', '.join(sorted(index))})")
        path = index[base]
    config = from_mapping(TaskConfig, read_yaml(path), str(path))
    if not name.endswith((".yaml", ".yml")) and "@" in name and name.split("@", 1)[1] != str(config.version):
        raise SpecError(f"{path}: version: task {config.name} is at version {config.version}, not {name}")
    return config


def load_task_config(name: str) -> TaskConfig:
    """``read_task_config`` with its family checked against the registered task families (``SpecError`` naming the
    file otherwise)."""
    config = read_task_config(name)
    if config.family not in TASKS:
        try:
            TASKS.get(config.family)  # raises with a did-you-mean
        except RegistryError as exc:
            raise SpecError(f"{task_file(name)}: family: {exc}") from exc
    return config


def task_file(name: str) -> Path:
    """The YAML file of task ``name`` (``name``, ``name@version`` or a path)."""
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    index = _task_index(str(tasks_dir()))
    base = name.partition("@")[0]
    if base not in index:
        load_task_config(name)  # raises the did-you-mean error
    return index[base]


class EmptyForgetSetError(SpecError):
    """A forget split with no items (raised by ``load_task``, or by a family that cannot build empty datasets)."""


def empty_forget_set(config: TaskConfig, split: str) -> EmptyForgetSetError:
    return EmptyForgetSetError(f"forget_splits: the forget set of {config.name}/{split} is empty (0 items): "
                               f"nothing to unlearn")


def load_task(name: str, split: str) -> TaskData:
    """Load (task, forget split) through the task's registered family. An empty forget set is a ``SpecError``
    naming the task file: there would be nothing to unlearn and every forget metric would be undefined."""
    config = load_task_config(name)
    if split not in config.forget_splits:
        known = ", ".join(config.forget_splits)
        raise SpecError(f"task {config.name}: unknown forget split {split!r} (known: {known})")
    family = TASKS.get(config.family)
    try:
        data = family(config, split)
        if not data.unlearning_pairs("forget"):
            raise empty_forget_set(config, split)
    except EmptyForgetSetError as exc:
        raise SpecError(f"{task_file(name)}: {exc}") from exc
    undeclared = [s for s in data.split_names() if s not in family_splits(config)]
    if undeclared:  # the ids would miss the versions of the metrics these splits add
        raise SpecError(f"{task_file(name)}: family: {config.family} scores split(s) {', '.join(undeclared)} that "
                        f"bench.data.splits.FAMILY_SPLITS ({', '.join(family_splits(config))}) does not declare")
    return data


@cache
def check_forget_set(name: str, split: str, digest: str) -> None:
    """At plan time, for task families that build their data offline and fast (``family.offline = True``: the
    synthetic world), load (task, split) once, so an empty forget set stops the board before anything runs or is
    written. Families that download (TOFU, MUSE, WMDP) are checked when a run loads them (a failed record)."""
    config = load_task_config(name)
    if getattr(TASKS.get(config.family), "offline", False):
        load_task(name, split)
