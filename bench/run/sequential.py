"""Sequential forget requests (MUSE's sustainability): the forget split cut into consecutive groups of subjects,
each unlearned on the previous result with the full budget."""

from __future__ import annotations

import numpy as np

from bench.data.tasks import TaskData
from bench.metrics.evaluate import Evaluation, evaluate
from bench.run.train import TrainResult, unlearn
from bench.specs.run import RunSpec


def request_subjects(data: TaskData) -> list[str]:
    """The subject of each item of ``data.unlearning_pairs("forget")``: its person (QA items, then texts), or with
    a forget corpus the document's ``person`` (MUSE's sustainability fold), or the document itself."""
    if data.forget_corpus is not None:
        corpus = data.forget_corpus
        return list(corpus["person"]) if "person" in corpus.column_names else list(corpus["id"])
    return list(data.forget["person"]) + (list(data.forget_bio["person"]) if data.forget_bio is not None else [])


def request_groups(data: TaskData, n: int) -> list[list[int]]:
    """Indices into ``data.unlearning_pairs("forget")`` of each of ``n`` sequential forget requests: the forget
    subjects (persons) in their split order, cut into ``n`` consecutive groups as equal as possible; a request
    covers every QA item and text of its subjects. With a forget corpus the subjects are its documents' ``person``
    (MUSE's sustainability folds), or each document alone when the corpus has no such column."""
    persons = request_subjects(data)
    subjects = list(dict.fromkeys(persons))
    if n > len(subjects):
        raise ValueError(f"requests: {n} sequential requests but the forget split has {len(subjects)} subjects")
    bounds = [round(i * len(subjects) / n) for i in range(n + 1)]
    group_of = {person: g for g in range(n) for person in subjects[bounds[g]: bounds[g + 1]]}
    return [[i for i, person in enumerate(persons) if group_of[person] == g] for g in range(n)]


SEQUENTIAL_METRICS = ("forget/es", "forget/prob", "forget/knowmem", "forget_bio/verbmem", "retain/es",
                      "retain/knowmem", "world_facts/prob", "model_utility", "forget_quality")


def run_sequential(spec: RunSpec, data: TaskData, model, method, forget, retain, idk, reference, tokenizer,
                oracle_per_item, alternate=None) -> tuple[TrainResult, list[dict], list[str], Evaluation]:
    """MUSE sustainability: unlearn request after request on the same model, each with the full ``spec.budget``
    (a fresh optimizer per request; the reference model, where the method has one, stays the original target),
    and record the metrics after each. ``requested/forget/es`` is the forget ES over the subjects requested so
    far, ``pending/forget/es`` over those not yet requested (how much forgetting spills over)."""
    groups = request_groups(data, spec.requests)
    forget_person = dict(zip(data.forget["id"], data.forget["person"]))
    persons = request_subjects(data)
    total = TrainResult(steps=0)
    history: list[dict] = []
    exceeded: list[str] = []
    evaluation = None
    for r, rows in enumerate(groups):
        part = unlearn(model, method, [forget[i] for i in rows], retain, spec.budget, spec.seed + r,
                       tokenizer.pad_token_id, reference, idk=[idk[i] for i in rows] if idk is not None else None,
                       alternate=[alternate[i] for i in rows] if alternate is not None else None)
        total.steps += part.steps
        total.losses += part.losses
        total.diagnostics += part.diagnostics
        total.seconds += part.seconds
        for name in ("optimizer_steps", "forget_examples", "retain_examples", "forward_passes",
                     "reference_forward_passes"):
            setattr(total.use, name, getattr(total.use, name) + getattr(part.use, name))
        # the last request's evaluation is the run's final one, with the GradNorm MIA like any final evaluation
        evaluation = evaluate(model, tokenizer, data, oracle_per_item, gradnorm=r == len(groups) - 1)
        requested = {persons[i] for g in groups[: r + 1] for i in g}
        es = evaluation.per_item["forget"]["es"]
        mask = np.array([forget_person[i] in requested for i in evaluation.ids["forget"]])
        entry = {"request": r + 1, "subjects": sorted({persons[i] for i in rows}), "steps": part.steps,
                 "exceeded": part.use.exceeded(spec.budget),
                 "metrics": {k: evaluation.metrics[k].value for k in SEQUENTIAL_METRICS if k in evaluation.metrics}}
        entry["metrics"]["requested/forget/es"] = float(es[mask].mean()) if mask.any() else None
        entry["metrics"]["pending/forget/es"] = float(es[~mask].mean()) if (~mask).any() else None
        history.append(entry)
        exceeded += [f"request {r + 1}: {reason}" for reason in entry["exceeded"]]
    assert evaluation is not None
    return total, history, exceeded, evaluation
