"""TOFU (Maini et al. 2024, arXiv 2401.06121; hub dataset ``locuslab/TOFU``, MIT license): 200 fictitious authors,
20 QA pairs each, forget01 / forget05 / forget10 with retain99 / retain95 / retain90, and the evaluation sets the
paper scores: ``forgetXX_perturbed`` and ``retain_perturbed`` (paraphrased and 5 perturbed answers per question),
``real_authors_perturbed`` and ``world_facts_perturbed`` (model utility).

Mapping to ``TaskData`` (the schema every metric reads):

* ``forget`` = ``forgetXX_perturbed`` (the forget questions with their paraphrased and perturbed answers);
* ``retain`` = ``retainXX`` (the retain set the unlearning regulariser samples from; question and answer only);
* ``retain_eval`` = ``retain_perturbed`` (the 400 retain questions TOFU evaluates, with paraphrased and perturbed
  answers);
* ``world_facts`` = ``world_facts_perturbed`` and ``real_authors`` = ``real_authors_perturbed`` (utility; TOFU's
  truth ratio there compares the answer itself, not a paraphrase, with the perturbed answers);
* no holdout: TOFU has no never-trained authors, so the membership-inference metrics are left out.

``forget_quality`` and ``model_utility`` are the engine's, as the paper computes them; evaluation caps each split at
``eval.max_items`` (300 by default for TOFU, the paper's cap for its generation metrics).
"""

from __future__ import annotations

import random

from datasets import Dataset

from bench.data.hub import load_hub_json
from bench.data.schema import FEATURES, IDK_ANSWERS
from bench.data.tasks import TaskConfig, TaskData
from bench.registry import TASKS
from bench.specs.mapping import SpecError

SPLITS = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
QA_PER_AUTHOR = 20


def to_schema(rows: Dataset, prefix: str, paraphrase_is_answer: bool, seed: int) -> Dataset:
    """TOFU rows -> the task schema: ids ``<prefix>/<i>``, ``person`` = the author (20 consecutive questions each,
    as TOFU lays them out), the paraphrased answer (or the answer itself where TOFU compares with it), the list of
    perturbed answers, the paraphrased question when TOFU has one, and a seeded "I don't know" answer."""
    rng = random.Random(f"{seed}/{prefix}")
    out = []
    for i, row in enumerate(rows):
        perturbed = row.get("perturbed_answer") or []
        if isinstance(perturbed, str):
            perturbed = [perturbed]
        out.append({
            "id": f"{prefix}/{i:05d}", "person": f"{prefix}/author{i // QA_PER_AUTHOR:03d}", "attribute": "",
            "question": row["question"], "answer": row["answer"],
            "paraphrased_question": row.get("paraphrased_question") or row["question"],
            "paraphrased_answer": row["answer"] if paraphrase_is_answer else row.get("paraphrased_answer")
            or row["answer"],
            "perturbed_answers": list(perturbed), "idk_answer": rng.choice(IDK_ANSWERS),
        })
    return Dataset.from_list(out, features=FEATURES)


@TASKS.register("tofu")
def load_tofu(config: TaskConfig, split: str) -> TaskData:
    """Load TOFU at the task's pinned revision (``params.dataset``, ``params.revision``)."""
    if split not in SPLITS:
        raise SpecError(f"task {config.name}: TOFU forget split must be one of {', '.join(SPLITS)}, got {split!r}")
    dataset, revision = config.params["dataset"], config.params["revision"]
    seed = int(config.params.get("seed", 0))

    def get(name: str) -> Dataset:
        return load_hub_json(dataset, name, revision, f"task {config.name}")

    forget = to_schema(get(f"{split}_perturbed"), f"tofu/{split}", False, seed)
    retain_rows = get(SPLITS[split])
    retain = Dataset.from_list([{"question": r["question"], "answer": r["answer"]} for r in retain_rows])
    retain = to_schema(retain, f"tofu/{SPLITS[split]}", True, seed)
    return TaskData(config=config, split=split, forget=forget, retain=retain, holdout=None,
                    world_facts=to_schema(get("world_facts_perturbed"), "tofu/world_facts", True, seed),
                    retain_eval=to_schema(get("retain_perturbed"), "tofu/retain_perturbed", False, seed),
                    real_authors=to_schema(get("real_authors_perturbed"), "tofu/real_authors", True, seed))


# the scored splits (``bench.data.tasks.family_splits``: their metrics' versions enter the run ids)
load_tofu.eval_splits = ("forget", "retain", "world_facts", "real_authors")
