"""Alternate answers to the forget questions: AltPO's positive feedback (Mekala et al. 2024, arXiv 2409.13474).

The paper generates several plausible alternate answers per forget item with the target model itself (a prompt that
asks it to change the facts). Here they come from the task's own world instead, with no generation: a forget item's
alternate is a retain person's answer to the same attribute with that person's name replaced by the forget person's
(for a biography, a retain person's biography, name replaced), i.e. the same template with another trained value.
The choice is seeded by the item id (the same alternates on every run and machine), never equals the true answer, and
uses only text the target was trained on (no holdout or evaluation-only text such as the perturbed answers). One
alternate per item, where the paper samples five.

Defined for task families whose forget items name their subject in the answer and carry an ``attribute``
(``ALTERNATE_FAMILIES``); runs of methods that need alternates are refused on other tasks when the board is planned.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from bench.data.tasks import TaskData

ALTERNATE_FAMILIES = ("synthetic",)


def _swapped(person: str, truth: str, others: Iterable[tuple[str, str]]) -> list[str]:
    """The distinct texts of ``others`` ((person, text) pairs) with their person's name replaced by ``person``, other
    than ``truth``, in first-seen order."""
    candidates = (text.replace(other, person) for other, text in others if other != person)
    return [text for text in dict.fromkeys(candidates) if text != truth]


def _choose(item_id: str, candidates: list[str]) -> str:
    if not candidates:
        raise ValueError(f"no alternate answer for {item_id}: no other person has a different value")
    return random.Random(item_id).choice(candidates)


def alternate_answers(data: TaskData) -> list[str]:
    """One alternate answer per forget pair, aligned with ``data.unlearning_pairs("forget")``: for each forget QA
    item, a retain person's answer to the same attribute with the name swapped; then for each forget biography, a
    retain person's biography with the name swapped. ``ValueError`` where the task cannot supply them."""
    if data.config.family not in ALTERNATE_FAMILIES or data.forget_corpus is not None:
        raise ValueError(f"task {data.config.name} (family {data.config.family}) has no alternate answers "
                         f"(families that have: {', '.join(ALTERNATE_FAMILIES)})")
    by_attribute: dict[str, list[tuple[str, str]]] = {}
    for person, attribute, answer in zip(data.retain["person"], data.retain["attribute"], data.retain["answer"]):
        by_attribute.setdefault(attribute, []).append((person, answer))
    out = [_choose(item_id, _swapped(person, answer, by_attribute.get(attribute, [])))
           for item_id, person, attribute, answer in zip(data.forget["id"], data.forget["person"],
                                                          data.forget["attribute"], data.forget["answer"])]
    if data.forget_bio is not None:
        bios = list(zip(data.retain_bio["person"], data.retain_bio["text"])) if data.retain_bio is not None else []
        out += [_choose(item_id, _swapped(person, text, bios))
                for item_id, person, text in zip(data.forget_bio["id"], data.forget_bio["person"],
                                                 data.forget_bio["text"])]
    return out
