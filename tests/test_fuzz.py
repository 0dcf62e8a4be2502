"""Fuzzing the parsers of user input and stored records (hypothesis).

Property, for every parser: the input gives either a valid object or a ``SpecError`` (records:
``CorruptRecordWarning``) whose message is ONE line naming the file; never another exception type. Parsers: the spec
builder ``from_mapping`` (``Budget``, ``ControlSpec``, ``LeaderboardSpec`` fields), ``read_yaml`` on arbitrary text
and bytes, task YAML loading (``load_task_config``), model presets (``load_preset``), leaderboard files
(``LeaderboardSpec.load``) and the record reader (``Store.load``). Bugs these found (fixed): ``read_yaml`` raised
``UnicodeDecodeError`` on non-UTF-8 bytes and ``ValueError`` on YAML timestamps such as ``2024-13-01``; a
``None``-able field (``base: 3``) accepted any value; ``nan`` / ``inf`` passed as numbers (``lr: .nan``);
``num_heads: 0`` raised ``ZeroDivisionError``; an unknown task family was a ``RegistryError`` without the file;
``tables`` values were not checked; a board name with ``/`` or a NUL byte escaped or broke its output folder."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import warnings
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.data.tasks import EvalConfig, TaskConfig, TinyModelConfig, load_task_config
from bench.models.presets import FinetuneRecipe, HubCheckpoint, ModelPreset, load_preset
from bench.runtime.records import RunRecord
from bench.runtime.sections import MetricEntry, RecordError
from bench.runtime.store import CorruptRecordWarning, Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError, from_mapping, read_yaml
from bench.specs.run import Budget, ControlSpec

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCE = "fuzz.yaml"

scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.integers() | st.floats()
           | st.text(max_size=12) | st.sampled_from(["standard", "smoke", "mixing", "none", "cosine", "lora",
                                                       "forget10", "synthetic", "llama", "float32", "bfloat16"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4), max_leaves=12)


def mappings(cls: type, nested: dict[str, st.SearchStrategy] | None = None) -> st.SearchStrategy[dict]:
    """Mappings over ``cls``'s field names (and a few unknown keys), with arbitrary values or, for the fields in
    ``nested``, the given strategy: mostly near-valid specs, so the checks deep inside are reached."""
    names = [f.name for f in dataclasses.fields(cls)]
    nested = nested or {}
    field_values = {name: (nested[name] | values) if name in nested else values for name in names}
    known = st.fixed_dictionaries({}, optional=field_values)
    unknown = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=2)
    return st.tuples(known, unknown).map(lambda kv: {**kv[1], **kv[0]})


def assert_one_line_naming(message: str, source: str) -> None:
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(str(source)), (message, source)


def assert_valid(built: object, cls: type) -> None:
    """A valid object: every number or string field of ``cls`` holds a finite number or a string (a parser that
    let ``.nan``, a bool or a list through would fail here)."""
    assert type(built) is cls, type(built)
    for f in dataclasses.fields(cls):
        value = getattr(built, f.name)
        if f.type in ("int", "float"):
            assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), f.name
        elif f.type == "str":
            assert isinstance(value, str), f.name


def check_mapping(cls: type, data: dict) -> None:
    try:
        built = from_mapping(cls, data, SOURCE)
    except SpecError as exc:
        assert_one_line_naming(str(exc), SOURCE)
        return
    assert_valid(built, cls)


ints = st.integers(-3, 50)
budget_fields = {"steps": ints, "lr": st.floats(-1, 1), "batch_size": ints, "grad_accum": ints,
                 "warmup_steps": ints, "callback_every": ints, "schedule": st.sampled_from(["constant", "x"]),
                 "forward_passes_per_step": ints}
control_fields = {"kind": st.sampled_from(["mixing", "none", "early_stop", "mix"]), "tau": st.floats(-1, 2),
                  "tolerance": st.floats(-1, 2), "utility": st.sampled_from(["retain_es", "model_utility", "u"])}


@FUZZ
@given(mappings(Budget, budget_fields))
def test_budget_mappings(data: dict) -> None:
    check_mapping(Budget, data)


@FUZZ
@given(mappings(ControlSpec, control_fields))
def test_control_mappings(data: dict) -> None:
    check_mapping(ControlSpec, data)


task_entries = st.lists(st.fixed_dictionaries({"task": st.sampled_from(["synthetic", "x"]),
                                               "split": st.sampled_from(["forget10", "f"])},
                                              optional={"requests": ints, "model": values}), max_size=2)
method_entries = st.lists(st.fixed_dictionaries({"method": st.sampled_from(["ga", "npo"])},
                                                optional={"label": values, "params": values, "plugin": values}),
                          max_size=2)
board_fields = {"name": st.sampled_from(["mini", "a/b", "..", "x\0y", ""]), "version": st.just("1"),
                "tasks": task_entries, "methods": method_entries, "columns": st.lists(st.text(max_size=6)),
                "sort": st.fixed_dictionaries({"by": st.text(max_size=6)}, optional={"descending": values}),
                "budget": st.sampled_from(["standard", "huge"]) | mappings(Budget, budget_fields),
                "control": mappings(ControlSpec, control_fields), "seeds": st.lists(ints, max_size=3),
                "tables": st.dictionaries(st.text(max_size=5), values, max_size=2),
                "adapter": st.dictionaries(st.sampled_from(["r", "alpha", "dropout", "kind"]), values, max_size=3)}


@FUZZ
@given(mappings(LeaderboardSpec, board_fields))
def test_leaderboard_mappings(data: dict) -> None:
    check_mapping(LeaderboardSpec, data)


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


yaml_like = st.lists(st.sampled_from([*"abc:-[]{}#&*!|>'\"%@`,?\n\t 0123.9eE+_\x00", "2024-13-01", ".nan",
                                       "name: ", "version: ", "\n  - "]), max_size=30).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=80), yaml_like, st.binary(max_size=80)))
def test_read_yaml_on_arbitrary_text(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), "board.yaml", text)
        try:
            data = read_yaml(path)
        except SpecError as exc:
            assert_one_line_naming(str(exc), str(path))
            return
        assert isinstance(data, dict)


def _dump(data: dict) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:  # e.g. a key hypothesis made that YAML cannot represent: write it as JSON (valid YAML)
        return json.dumps(data, default=str)


def check_file(load, folder: Path, data: dict | str, expected: type) -> None:  # noqa: ANN001
    path = _write(folder, "spec.yaml", data if isinstance(data, str) else _dump(data))
    try:
        built = load(str(path))
    except SpecError as exc:
        assert_one_line_naming(str(exc), str(path))
        return
    assert_valid(built, expected)


task_fields = {"name": st.just("fuzz-task"), "version": ints, "family": st.sampled_from(["synthetic", "synthtic"]),
               "forget_splits": st.lists(st.sampled_from(["forget10", "forget05"]), max_size=2),
               "prompt_template": st.just("Q: {question}\nA:"), "params": st.dictionaries(st.text(max_size=5), values),
               "eval": mappings(EvalConfig, {n: ints for n in ("max_items", "batch_size", "max_new_tokens")}),
               "model": mappings(TinyModelConfig, {n: ints for n in ("hidden_size", "num_heads", "num_layers")}),
               "lm_eval_tasks": st.lists(st.text(max_size=5), max_size=2)}


@FUZZ
@given(mappings(TaskConfig, task_fields) | yaml_like)
def test_task_yaml_loading(data: dict | str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check_file(load_task_config, Path(folder), data, TaskConfig)


checkpoints = mappings(HubCheckpoint, {"hub_id": st.just("lab/model"), "revision": st.just("0" * 40)})
preset_fields = {"name": st.just("fuzz"), "base": checkpoints, "target": checkpoints,
                 "oracles": st.lists(checkpoints, max_size=2), "tokenizer": checkpoints,
                 "dtype": st.sampled_from(["float32", "bfloat16", "float64"]),
                 "autocast": st.sampled_from(["", "bfloat16", "int8"]),
                 "finetune": mappings(FinetuneRecipe, {"epochs": ints, "lr": st.floats(-1, 1), "batch_size": ints}),
                 "tasks": st.lists(st.text(max_size=5), max_size=2)}


@FUZZ
@given(mappings(ModelPreset, preset_fields) | yaml_like)
def test_model_preset_loading(data: dict | str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check_file(load_preset, Path(folder), data, ModelPreset)


@FUZZ
@given(mappings(LeaderboardSpec, {**board_fields, "name": st.sampled_from(["mini", "a/b", "..", ""])}))
def test_leaderboard_files(data: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check_file(LeaderboardSpec.load, Path(folder), data, LeaderboardSpec)


record_like = st.fixed_dictionaries({"schema_version": st.sampled_from([1, 1, 2, 3, "1"])},
                                    optional={k: values for k in ("status", "error", "metrics", "spec", "timings",
                                                                   "env", "control", "train", "geffect", "budget",
                                                                   "run_id", "id")})


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=100).map(str.encode),
                 record_like.map(lambda r: json.dumps(r).encode()),
                 record_like.map(lambda r: json.dumps(r).encode()[: len(json.dumps(r)) // 2])))
def test_store_load_on_arbitrary_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(folder)
        path = store.folder("runs", "r") / "result.json"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = store.load("runs", "r")
        corrupt = [w for w in caught if issubclass(w.category, CorruptRecordWarning)]
        if record is None:
            (warning,) = corrupt
            assert_one_line_naming(str(warning.message), str(path))
        else:
            assert not corrupt and isinstance(record, RunRecord) and isinstance(record.status, str)
            assert record.error is None or isinstance(record.error, RecordError)
            assert all(isinstance(entry, MetricEntry) for entry in record.metrics.values())
            assert RunRecord.from_dict(record.to_dict()) == record  # the record written back reads as itself
