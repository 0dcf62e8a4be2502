"""The embedded synthetic task: size, split structure, answer variants and byte-identical determinism."""

from __future__ import annotations

from datasets import Dataset

from bench.data.synthetic import ATTRIBUTES, N_PERTURBED, generate_world, person_split, world_digest
from bench.data.tasks import load_task

QA_DIGEST_V1 = "7731244ad2fc17c08a46031822d02c828b5bf839469adc008f6f7af03b9652b1"


def test_world_size_and_attributes() -> None:
    world = generate_world(seed=0, n_people=100, n_holdout=20)
    people = {item["person"] for item in world["people"]}
    assert len(people) == 100
    assert len(ATTRIBUTES) >= 8
    per_person = {p: {i["attribute"] for i in world["people"] if i["person"] == p} for p in people}
    assert all(len(attrs) == len(ATTRIBUTES) for attrs in per_person.values())
    assert len({i["person"] for i in world["holdout"]}) == 20
    assert not people & {i["person"] for i in world["holdout"]}
    assert len(world["world_facts"]) >= 100


def test_every_item_has_variants() -> None:
    world = generate_world()
    for item in world["people"] + world["holdout"] + world["world_facts"]:
        assert len(item["perturbed_answers"]) == N_PERTURBED >= 3
        assert item["paraphrased_answer"] not in item["perturbed_answers"]
        assert len(set(item["perturbed_answers"])) == N_PERTURBED
        assert item["answer"] != item["paraphrased_answer"]
        assert item["idk_answer"]
        assert item["question"] != item["paraphrased_question"]
    ids = [i["id"] for i in world["people"] + world["holdout"] + world["world_facts"]]
    assert len(ids) == len(set(ids))


def test_byte_identical_for_same_seed_and_different_for_another() -> None:
    assert world_digest(generate_world(seed=0)) == world_digest(generate_world(seed=0))
    assert world_digest(generate_world(seed=0)) != world_digest(generate_world(seed=1))


def test_forget_splits_nest_and_partition_people() -> None:
    people = generate_world()["people"]
    forgotten = {}
    for percent in (1, 5, 10):
        forget, retain = person_split(people, percent)
        names = {i["person"] for i in forget}
        assert len(names) == percent
        assert not names & {i["person"] for i in retain}
        assert len(forget) + len(retain) == len(people)
        forgotten[percent] = names
    assert forgotten[1] < forgotten[5] < forgotten[10]


def test_task_exposes_datasets() -> None:
    data = load_task("synthetic", "forget05")
    for ds in (data.forget, data.retain, data.holdout, data.world_facts):
        assert isinstance(ds, Dataset)
    assert len(data.forget) == 50 and len(data.retain) == 950
    assert len(data.target_train) == 1000 + len(data.world_facts) + 100  # QA, world facts, one biography each
    assert set(data.oracle_train["id"]).isdisjoint(data.forget["id"])
    assert set(data.oracle_train["id"]).isdisjoint(data.forget_bio["id"])
    assert len(data.forget_bio) == 5 and len(data.retain_bio) == 95
    assert data.target_train["id"] == load_task("synthetic", "forget10").target_train["id"]


def test_biographies_hold_the_persons_facts_and_split_into_prefix_and_continuation() -> None:
    world = generate_world()
    assert len(world["bios"]) == 100
    facts = {}
    for item in world["people"]:
        facts.setdefault(item["person"], []).append(item)
    for bio in world["bios"]:
        assert bio["text"] == f"{bio['prefix']} {bio['continuation']}"
        assert bio["prefix"].startswith(bio["person"]) and bio["prefix"].endswith(".")
        # every attribute value of the person's QA answers appears in the biography (the answer minus its template)
        birthplace = next(i for i in facts[bio["person"]] if i["attribute"] == "birthplace")["answer"]
        assert birthplace.removeprefix(f"{bio['person']} was born in ").rstrip(".") in bio["prefix"]
    forget = load_task("synthetic", "forget10")
    pairs = forget.unlearning_pairs("forget")
    assert len(pairs) == len(forget.forget) + len(forget.forget_bio)
    assert {q for q, _, _ in pairs[-10:]} == set(forget.forget_bio["question"])


def test_adding_biographies_left_every_qa_item_unchanged() -> None:
    """The biographies use their own seeded generator: QA records equal the version-1 generator's (digest
    pinned here; it changes only if a QA item changes)."""
    world = generate_world()
    qa = {k: world[k] for k in ("people", "holdout", "world_facts")}
    assert world_digest(qa) == QA_DIGEST_V1


def test_bucketed_batches_cover_every_item_once_with_little_padding() -> None:
    import torch

    from bench.models.tiny import bucketed_batches

    lengths = [25] * 200 + [90] * 20
    batches = bucketed_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(220))
    assert batches == bucketed_batches(lengths, 16, torch.Generator().manual_seed(0))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.3 * sum(lengths)  # unbucketed random batches of 16 pad most batches to 90 (~2.5x)


def test_alternate_answers_swap_in_another_trained_persons_value() -> None:
    """AltPO's alternates (``bench.data.alternates``): one per forget pair (QA, then biographies), each the forget
    person's answer template with a retain person's value of the same attribute (a retain person's answer with the
    name swapped), never the true answer, the same on every call; a biography's is a retain biography, renamed."""
    from bench.data.alternates import alternate_answers

    data = load_task("synthetic-mini", "forget10")
    alternates = alternate_answers(data)
    pairs = data.unlearning_pairs("forget")
    assert len(alternates) == len(pairs) == len(data.forget) + len(data.forget_bio)
    assert alternates == alternate_answers(data)
    retain_answers = {(a, p) for a, p in zip(data.retain["answer"], data.retain["person"])}
    for (_, answer, _), alternate, row in zip(pairs, alternates, data.forget):
        assert alternate != answer and row["person"] in alternate
        renamed = [a for a, p in retain_answers if a.replace(p, row["person"]) == alternate]
        assert renamed, alternate
        attribute = next(attr for attr in ATTRIBUTES if attr.name == row["attribute"])
        assert alternate.startswith(attribute.answer.split("{v}")[0].format(n=row["person"]))
    bios = dict(zip(data.retain_bio["person"], data.retain_bio["text"]))
    for (_, text, _), alternate, person in zip(pairs[len(data.forget):], alternates[len(data.forget):],
                                               data.forget_bio["person"]):
        assert alternate != text and any(t.replace(p, person) == alternate for p, t in bios.items())
    assert len(set(alternates)) > len(alternates) // 2  # drawn per item, not one fixed choice


def test_methods_needing_alternates_are_refused_on_tasks_without_them() -> None:
    """A board entry of AltPO on a task whose family has no alternates fails when the board is planned, naming the
    file and entry (one line), not when its run starts."""
    import pytest

    from bench.run.runspec import make_run_spec
    from bench.specs.mapping import SpecError
    from bench.specs.run import Budget

    with pytest.raises(SpecError, match=r"^b\.yaml: methods\[2\]\.method: altpo needs alternate answers .* "
                                        r"task tofu \(family tofu\) does not supply"):
        make_run_spec("tofu", "forget10", "altpo", {}, Budget(), 0, "b.yaml", "methods[2]", check_data=False)
    assert make_run_spec("synthetic-mini", "forget10", "altpo", {}, Budget(), 0).method == "altpo"
