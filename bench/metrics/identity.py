"""Which registered metrics a task evaluates, and their versions: the part of a run or reference id that says which
metric code produced the record's numbers.

A task evaluates a metric when the roles of the splits its family declares (``bench.data.tasks.family_splits``, read
without importing the family; roles as in ``bench.data.splits.SPLIT_ROLES``) meet the metric's (``evaluated_on``).
The mapping ``{metric name: version}`` (with ``"<evaluation>/*": version`` for each registered evaluation that
computes numbers on every evaluated model) enters every run id (``RunSpec.model["metric_versions"]``) and reference id
of the task, so bumping one metric's ``version`` (or adding or removing a metric the task evaluates) changes exactly
the ids of the tasks that evaluate it. The count is by split roles, not by the data's contents: a metric that reads
an input a task's data lacks (the truth ratio on MUSE's KnowMem QA, which has no perturbed answers) still counts for
that task, so a bump may recompute a few records too many, never too few.
"""

from __future__ import annotations

from bench.data.splits import SPLIT_ROLES
from bench.data.tasks import TaskConfig, family_splits
from bench.registry import EVALUATIONS, METRICS


def task_roles(config: TaskConfig) -> frozenset[str]:
    """The roles of the splits the task's family declares."""
    return frozenset(SPLIT_ROLES[split] for split in family_splits(config))


def evaluated_metrics(config: TaskConfig) -> list[str]:
    """Names of the registered metrics the task evaluates, sorted. A registered object without ``evaluated_on``
    (an out-of-tree metric of another kind) counts for every task."""
    roles = task_roles(config)
    out = []
    for name in METRICS.names():
        metric = METRICS.get(name)
        evaluated_on = getattr(metric, "evaluated_on", None)
        if evaluated_on is None or evaluated_on(roles):
            out.append(name)
    return out


def evaluation_versions() -> dict[str, str]:
    """``{"<name>/*": version}`` of every registered evaluation that computes its own numbers on each evaluated model
    (``EvaluationSpec.compute``: lm-eval utility, the relearning attack, a plug-in's): its keys ``<name>/...`` are at
    that version. Counted for every task (an evaluation with nothing to do on a task adds no number to its records,
    so a bump may recompute a few records too many, never too few)."""
    specs = {name: EVALUATIONS.get(name) for name in EVALUATIONS.names()}
    return {f"{name}/*": str(spec.version) for name, spec in specs.items() if spec.compute is not None}


def metric_versions(config: TaskConfig) -> dict[str, str]:
    """``{name: version}`` of every metric the task evaluates (a metric without a declared version is at "1"), but a
    metric declared ``in_ids=False`` at version "1" (added without re-keying: ``ModelMetric.in_ids``), and of every
    evaluation that computes numbers (``evaluation_versions``)."""
    versions = {name: str(getattr(METRICS.get(name), "version", "1")) for name in evaluated_metrics(config)}
    return {**{name: version for name, version in versions.items()
               if getattr(METRICS.get(name), "in_ids", True) or version != "1"},
            **evaluation_versions()}
