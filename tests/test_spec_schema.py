"""The pydantic schemas behind ``from_mapping`` (``bench.specs.schema``): the input rules that the hand-written checker
had and pydantic's lax mode has not (strict scalars, no sets for lists), and which error the one-line message names
when a mapping has several."""

from __future__ import annotations

import pytest
import yaml

from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError, content_hash, from_mapping
from bench.specs.run import AdapterSpec, Budget

SOURCE = "x.yaml"


def board(**fields: object) -> dict:
    return {"name": "b", "version": "1", "tasks": [{"task": "synthetic", "split": "forget10"}],
            "methods": [{"method": "ga"}], "columns": ["forget/es"], "sort": {"by": "forget/es"}, **fields}


@pytest.mark.parametrize(("data", "message"), [
    ({"steps": "3"}, "steps: expected an integer, got str '3'"),
    ({"steps": 3.0}, "steps: expected an integer, got float 3.0"),
    ({"lr": True}, "lr: expected a number, got bool True"),
    ({"lr": "1e-4"}, "lr: expected a number, got str '1e-4'"),
    ({"lr": float("inf")}, "lr: expected a finite number, got inf"),
    ({"lr": 10**400}, "lr: number out of range"),
    ({"schedule": 1}, "schedule: expected str, got int 1"),
    ({"stpes": 3, "lr": "x"}, "stpes: unknown field; did you mean 'steps'?"),  # unknown keys first
    ({"steps": 0}, "steps: must be >= 1, got 0"),  # __post_init__, located
])
def test_budget_input_rules(data: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        from_mapping(Budget, data, SOURCE, "budget")
    assert str(info.value).startswith(f"{SOURCE}: budget.{message}"), str(info.value)


def test_an_int_for_a_float_is_converted_so_hashes_do_not_depend_on_the_yaml_spelling() -> None:
    one = from_mapping(Budget, {"lr": 1}, SOURCE)
    assert isinstance(one.lr, float) and content_hash(one) == content_hash(from_mapping(Budget, {"lr": 1.0}, SOURCE))


def test_lists_become_tuples_and_a_yaml_set_is_no_list() -> None:
    adapter = from_mapping(AdapterSpec, {"target_modules": ["q_proj", "v_proj"]}, SOURCE)
    assert adapter.target_modules == ("q_proj", "v_proj")
    data = yaml.safe_load("target_modules: !!set {q_proj, v_proj}")
    with pytest.raises(SpecError, match=r"^x\.yaml: target_modules: expected a list, got set"):
        from_mapping(AdapterSpec, data, SOURCE)


@pytest.mark.parametrize(("fields", "message"), [
    ({"budget": 5}, "budget: expected str, got int 5"),  # neither a tier name nor a mapping: the last option's words
    ({"budget": {"steps": "x"}}, "budget.steps: expected an integer"),  # a mapping: the Budget option only
    ({"adapter": 3}, "adapter: expected a mapping, got int 3"),
    ({"tables": {"t": [1]}}, "tables.t[0]: expected str, got int 1"),
    ({"tables": {3: ["a"]}}, "tables: keys must be text, got int 3"),
    ({"tasks": [{"task": "s", "split": "f", "requests": 0}]}, "tasks[0].requests: must be an integer >= 1"),
    ({"name": 1, "sort": {"bye": "x"}}, "name: expected str, got int 1"),  # the first field in declaration order
])
def test_board_errors_name_the_field(fields: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        from_mapping(LeaderboardSpec, board(**fields), SOURCE)
    assert str(info.value).startswith(f"{SOURCE}: {message}"), str(info.value)


def test_a_valid_board_mapping_builds_the_frozen_dataclasses() -> None:
    spec = from_mapping(LeaderboardSpec, board(budget={"steps": 5}, adapter={"r": 4}, seeds=[0, 1]), SOURCE)
    assert spec.budget == Budget(steps=5) and spec.adapter == AdapterSpec(r=4) and spec.seeds == (0, 1)
    assert spec.tasks[0].requests == 1 and spec.sort.descending is None  # best first (bench.grid.columns)
