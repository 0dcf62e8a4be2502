"""Sequential unlearning (MUSE sustainability): the forget split applied as several forget requests in a row."""

from __future__ import annotations

import pytest

from bench.run.execute import execute
from bench.run.runspec import make_run_spec
from bench.run.sequential import request_groups
from bench.specs.board import TaskEntry
from bench.specs.mapping import SpecError
from bench.specs.run import Budget, ControlSpec
from tests.conftest import MINI

BUDGET = Budget(steps=3, lr=5e-4, batch_size=4, callback_every=0)


def test_request_groups_partition_the_forget_subjects(mini_data) -> None:
    pairs = mini_data.unlearning_pairs("forget")
    persons = list(mini_data.forget["person"]) + list(mini_data.forget_bio["person"])
    groups = request_groups(mini_data, 2)
    assert sorted(i for g in groups for i in g) == list(range(len(pairs)))
    subjects = [{persons[i] for i in g} for g in groups]
    assert len(subjects[0]) == len(subjects[1]) == 1 and not subjects[0] & subjects[1]
    with pytest.raises(ValueError, match="requests: 3 sequential requests but the forget split has 2 subjects"):
        request_groups(mini_data, 3)


def test_sequential_run_records_metrics_after_each_request(store) -> None:
    once = make_run_spec(MINI, "forget10", "ga", {}, BUDGET, seed=0)
    spec = make_run_spec(MINI, "forget10", "ga", {}, BUDGET, seed=0, requests=2)
    assert spec.run_id != once.run_id and spec.label.endswith("forget10x2/ga/seed0")
    record = execute(spec, store)
    assert record.ok, record.error
    history = record.extra["sequential"]
    assert [h["request"] for h in history] == [1, 2]
    assert record.budget.used["optimizer_steps"] == 2 * BUDGET.steps
    assert record.budget.exceeded == []
    first, last = history[0]["metrics"], history[1]["metrics"]
    # after the first request only its subject is "requested"; after the last every subject is
    assert first["pending/forget/es"] is not None and last["pending/forget/es"] is None
    assert last["requested/forget/es"] == pytest.approx(record.metrics["forget/es"].value)
    # the final record's metrics are the last request's evaluation, not a second pass
    assert last["forget/es"] == record.metrics["forget/es"].value
    again = execute(spec, store, reuse=False)
    assert again.extra["sequential"] == history  # same seed, same numbers


def test_sequential_requests_are_validated() -> None:
    with pytest.raises(SpecError, match="requests: must be an integer >= 1"):
        TaskEntry(MINI, "forget10", requests=0)
    with pytest.raises(SpecError, match="requests: sequential requests support control none or mixing"):
        make_run_spec(MINI, "forget10", "ga", {}, BUDGET, seed=0, requests=2,
                      control=ControlSpec(kind="early_stop"))
