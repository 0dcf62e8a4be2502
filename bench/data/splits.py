"""The evaluation splits a task may have, in order, with their roles: the one list every stage reads.

The role tells the item metrics how to score a split (``bench.metrics.evaluate``): ``forget``, ``retain`` and
``holdout`` are scored on the plain answer; ``utility`` (world facts, real authors) normalises Prob against the
perturbed answers; ``text`` splits are free-text documents of the forget / retain subjects (VerbMem and the
likelihood metrics of the whole text); ``mia`` splits are a benchmark's own membership-inference texts (MUSE's privleak
forget / holdout documents). Holdout people were never trained on: the membership-inference non-members. On a
``forgets`` split less knowledge is better (an item metric's ``forget_direction`` applies). The order is fixed:
``TaskData.eval_splits`` seeds each split's item subset with its position, so splits are only ever appended.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvalSplit:
    name: str
    role: str
    forgets: bool = False


EVAL_SPLITS = (EvalSplit("forget", "forget", forgets=True), EvalSplit("retain", "retain"),
               EvalSplit("world_facts", "utility"), EvalSplit("holdout", "holdout"),
               EvalSplit("forget_bio", "text", forgets=True), EvalSplit("retain_bio", "text"),
               EvalSplit("real_authors", "utility"), EvalSplit("mia_forget", "mia", forgets=True),
               EvalSplit("mia_holdout", "mia"))
SPLITS = tuple(s.name for s in EVAL_SPLITS)
SPLIT_ROLES = {s.name: s.role for s in EVAL_SPLITS}
FORGET_SPLITS = frozenset(s.name for s in EVAL_SPLITS if s.forgets)

# The splits each shipped task family scores (``load_task`` fails when a family's data has another). Run and
# reference ids carry the versions of the metrics evaluated on these splits (``bench.metrics.identity``), so they are
# declared here, where ids are computed without importing a family (a board rebuild loads no dataset code); a family
# not listed (out of tree) counts as scoring every split: its ids then cover too many metrics, never too few.
FAMILY_SPLITS: dict[str, tuple[str, ...]] = {
    "synthetic": ("forget", "retain", "world_facts", "holdout", "forget_bio", "retain_bio"),
    "tofu": ("forget", "retain", "world_facts", "real_authors"),
    "muse": ("forget", "retain", "forget_bio", "mia_forget", "mia_holdout"),
    "wmdp": ("forget", "retain"),
}
