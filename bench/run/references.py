"""Reference records: the target before unlearning and the retain oracle, evaluated once and stored like runs.

Reference records are evaluations of the cached tiny models (or a preset's checkpoints), computed once per (task
digest, split, replicate) and stored like runs, so forget quality reads the oracle's per-item truth ratios from disk
instead of re-scoring the oracle for every run; a shared store beside the model cache lets a new result store copy
them instead of evaluating again."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.attacks.base import AttackContext, attack_metrics, attack_versions
from bench.data.tasks import TaskConfig, TaskData, read_task_config
from bench.metrics.evaluate import SELF, evaluate, per_item_from_rows, shared_draws
from bench.metrics.identity import metric_versions
from bench.models.presets import ModelPreset, PresetModel, applied_config, load_preset, preset_models, preset_tokenizer
from bench.models.tiny import BuiltModel, TaskSplit, get_model, get_tokenizer, model_identity, model_key
from bench.run.record import external_metrics, metrics_dict, run_env
from bench.runtime.numerics import pin_threads
from bench.runtime.paths import cache_dir
from bench.runtime.records import ReferenceRecord
from bench.runtime.store import Store
from bench.specs.mapping import content_hash

REFS = ReferenceRecord.FOLDER

REFERENCE_KINDS = ("target", "oracle")


# The evaluation engine's version: bump when the engine (the teacher-forced pass, generation, lm-eval, the
# relearning attack, what is stored) changes a number; a change of one registered metric bumps that metric's
# ``version`` instead (``bench.metrics.identity``). Reference and run ids include both, so stored records of an
# older evaluation are recomputed instead of silently missing the new numbers.
EVAL_VERSION = 8  # 8: shared-prompt packing in the teacher-forced pass (round-off changes)


def evaluation_identity(config: TaskConfig, attacks: Sequence[str] = ()) -> dict[str, Any]:
    """What a record says about the code that scored it: the engine's and the task's metrics' versions, and the
    attacks it runs with their versions (only where there are any: ids of boards without attacks are unchanged)."""
    identity: dict[str, Any] = {"eval_version": EVAL_VERSION, "metric_versions": metric_versions(config)}
    if attacks:
        identity["attacks"] = attack_versions(attacks)
    return identity


def reference_key(task_digest: str, split: str, kind: str, model: tuple[str, str], eval_version: int,
                  metrics: dict[str, str] | None, attacks: dict[str, str] | None = None) -> str:
    """Content hash of a reference record's identity: task digest, forget split, model kind, the model (``("weights",
    identity)`` or ``("preset", digest)``), the engine's version and the metrics' versions (``metrics=None``: the
    form of the ids before metric versions entered them, which ``bench.run.migrate`` recognises)."""
    parts: list[Any] = [task_digest, split, kind, "eval", eval_version]
    if metrics is not None:
        parts += ["metrics", metrics]
    if attacks:
        parts += ["attacks", attacks]
    return content_hash([*parts, *model])


def reference_id(data: TaskData | TaskSplit, kind: str, preset: ModelPreset | None = None, replicate: int = 0,
                 attacks: Sequence[str] = ()) -> str:
    """Id of the reference record of ``kind`` (target / oracle) of replicate ``replicate``: the task's evaluation
    identity (``evaluation_identity``) and the tiny model's weight identity (``model_identity``) or the preset's
    digest (a preset has one target whatever the replicate)."""
    model = ("preset", preset.digest) if preset is not None else ("weights", model_identity(data, kind, replicate))
    return reference_key(data.config.digest, data.split, kind, model, EVAL_VERSION, metric_versions(data.config),
                         attack_versions(attacks) if attacks else None)


def task_reference_id(task: str, split: str, model: str | None, kind: str, replicate: int = 0,
                      attacks: Sequence[str] = ()) -> str:
    """``reference_id`` of a board task's reference of ``kind`` and ``replicate`` from the task config (with the
    preset's prompt format where ``model`` names one) and the shipped weights' hashes: no dataset, no model and no
    task family is loaded, so a board rebuild finds its reference records offline."""
    config = read_task_config(task)
    preset = load_preset(model) if model else None
    if preset is not None:  # its references are evaluated in the preset's prompt format
        config = applied_config(preset, config)
    return reference_id(TaskSplit(config, split), kind, preset, replicate, attacks)


@dataclass
class References:
    tokenizer: Any
    target: BuiltModel | PresetModel
    oracle: BuiltModel | PresetModel
    records: dict[str, ReferenceRecord]
    oracle_per_item: dict


def shared_references() -> Store:
    """A store of reference records beside the model cache, shared by every result store: a reference record is a
    pure function of its id (task digest, split, model kind, ``evaluation_identity``), so a new result store (a test's,
    a user's second board folder) copies it instead of evaluating the target and the oracle again."""
    return Store(cache_dir() / "refs")


def _copy_shared_reference(store: Store, ref_id: str) -> ReferenceRecord | None:
    shared = shared_references()
    if shared.root == store.root:
        return None
    record = shared.load_reference(ref_id)
    if record is not None:
        store.write(record, shared.per_item(REFS, ref_id))
    return record


def _reference_rows(store: Store, ref_id: str) -> list[dict]:
    """Per-item rows of a reference record: from ``store``, or from the shared reference store where ``store``
    holds no copy (a data-parallel process other than 0 never writes one)."""
    if store.has_per_item(REFS, ref_id):
        return store.per_item(REFS, ref_id)
    return shared_references().per_item(REFS, ref_id)


def _reference_spec(data: TaskData, kind: str, built: BuiltModel | PresetModel, preset: ModelPreset | None,
                    replicate: int, attacks: Sequence[str]) -> dict[str, Any]:
    """What a reference record says it evaluated: the task, split, model kind and key, replicate and weights (tiny
    models) or the preset, the task digest and the evaluation's versions (``evaluation_identity``)."""
    identity = {"task_digest": data.config.digest, **evaluation_identity(data.config, attacks)}
    if preset is not None:
        return {"task": data.config.ref, "split": data.split, "model": kind, "model_key": built.location,
                **identity, "preset": preset.name}
    return {"task": data.config.ref, "split": data.split, "model": kind, "model_key": model_key(data, kind, replicate),
            "replicate": replicate, "weights": model_identity(data, kind, replicate), **identity}


def get_references(data: TaskData, store: Store, preset: ModelPreset | None = None,
                   replicate: int = 0, kinds: tuple[str, ...] = ("oracle", "target"),
                   attacks: Sequence[str] = ()) -> References:
    """Build (or load) tokenizer, target and oracle (the task's tiny models of replicate ``replicate``, or
    ``preset``'s checkpoints), and their evaluation records. ``kinds = ("oracle",)`` evaluates the oracle only
    (the target's record then stays absent): a pool evaluates every replicate's oracle side by side before the
    targets, which need their oracle's per-item values. ``attacks`` run on both reference models: the oracle's values
    are each attack's "never learned" baseline."""
    pin_threads()
    if preset is None:
        tokenizer = get_tokenizer(data)
        built: dict[str, BuiltModel | PresetModel] = {kind: get_model(data, kind, replicate=replicate)
                                                      for kind in REFERENCE_KINDS}
    else:
        tokenizer = preset_tokenizer(preset)
        built = dict(preset_models(preset, data, tokenizer))
    records: dict[str, ReferenceRecord] = {}
    oracle_per_item: dict = {}
    for kind in kinds:  # the oracle first: the target's forget quality is measured against it
        ref_id = reference_id(data, kind, preset, replicate, attacks)
        record = store.load_reference(ref_id)
        if record is None:
            record = _copy_shared_reference(store, ref_id)
        if kind == "target" or record is not None:
            oracle_per_item = oracle_per_item or per_item_from_rows(
                _reference_rows(store, reference_id(data, "oracle", preset, replicate, attacks)))
        if record is None:
            start = time.perf_counter()
            oracle = SELF if kind == "oracle" else oracle_per_item
            model = built[kind].load()
            evaluation = evaluate(model, tokenizer, data, oracle, gradnorm=True)
            plain = metrics_dict(evaluation)
            attacked = attack_metrics(model, AttackContext(tokenizer, data, built["target"].load, built["oracle"].load),
                                      attacks, plain, shared_draws(evaluation.per_item, evaluation.ids)) \
                if attacks else {}
            record = ReferenceRecord(
                id=ref_id, spec=_reference_spec(data, kind, built[kind], preset, replicate, attacks),
                metrics={**plain, **external_metrics(model, tokenizer, data), **attacked},
                build=built[kind].info, timings={"eval_seconds": round(time.perf_counter() - start, 3)},
                env=run_env())
            store.write(record, evaluation.rows())
            shared_references().write(record, evaluation.rows())
            if kind == "oracle":
                oracle_per_item = per_item_from_rows(evaluation.rows())
        records[kind] = record
    return References(tokenizer, built["target"], built["oracle"], records, oracle_per_item)
