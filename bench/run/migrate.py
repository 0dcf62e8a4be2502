"""Re-key the stored records made before run and reference ids carried the method's and the metrics' versions
(``ubench store migrate``).

Ids are content hashes of their specs, so adding ``method_version`` and ``model["metric_versions"]`` to a run spec
(``bench.run.runspec``) and the metric versions to a reference id (``bench.run.references.reference_key``) gave
every record a new id. A record made by the evaluation engine of version ``EVAL_VERSION`` before that change is
still exactly what the current code computes: every method and metric was then at version ``LEGACY_VERSION`` and
the registered metrics were ``LEGACY_METRICS``. The migration states that fact in the record: new spec = old spec
+ those versions (``versioned_run_spec``, ``versioned_reference``), new id = the id the current code gives that
spec; the typed record re-keyed (``RunRecord.rekeyed``) is stored beside the old one with the old one's per-item
rows and other files byte for byte (``Store.write_rekeyed``: atomic, ``result.json`` last).

What the migration stamps is what made the record, not what the code says today: a method or metric bumped since
(or a metric added since) gives the migrated spec another id than the current code computes, so such a record is
recomputed, never passed off as current. Left alone, each with its reason: records that already carry the versions,
records of another engine version (stale: recomputed anyway), records whose id does not match their spec, and
records of a task whose file changed or is gone.

The old folder is kept: the store is append-only and content-addressed (an id names one spec forever, so the old
folder stays a correct record of the old spec), a checkout of older code (a release's own commit, another worktree
on the same store) still finds its records under the old ids, and a second migration finds the same records and
rewrites nothing. Search summaries list their trials by run id: theirs are rewritten to the new ids
(``SearchRecord.with_run_ids``; a search id hashes the search's inputs, not its trials', so it is unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.data.tasks import TaskConfig, read_task_config
from bench.metrics.identity import evaluated_metrics
from bench.models.presets import applied_config, load_preset
from bench.run.references import EVAL_VERSION, reference_key
from bench.runtime.records import Record, ReferenceRecord, RunRecord
from bench.runtime.store import Store
from bench.specs.mapping import SpecError, content_hash

LEGACY_VERSION = "1"  # the version of every method and metric when versions entered the ids
# the metrics registered when versions entered the ids (engine version 8): what a migrated record was scored with
LEGACY_METRICS = frozenset({
    "em", "es", "es_rephrased", "exact_answer", "fluency", "forget_quality", "gibberish", "knowmem",
    "mia_auc_gradnorm", "mia_auc_gradnorm_l2", "mia_auc_loss", "mia_auc_mink", "mia_auc_minkpp", "mia_auc_zlib",
    "mia_gradnorm", "mia_gradnorm_l2", "mia_loss", "mia_mink", "mia_minkpp", "mia_zlib", "model_utility",
    "privleak_gradnorm", "privleak_gradnorm_l2", "privleak_loss", "privleak_mink", "privleak_minkpp",
    "privleak_zlib", "prob", "rouge_l", "truth_ratio", "truth_ratio_raw", "verbmem"})
# the evaluations that computed numbers on every evaluated model then (``bench.metrics.identity.evaluation_versions``)
LEGACY_EVALUATIONS = ("lm_eval/*", "relearn/*")
SEARCHES = "searches"


@dataclass(frozen=True)
class Migration:
    """What the migration did with one stored record: ``new_id`` is None when it was left alone (``reason``)."""

    kind: str  # runs | refs | searches
    old_id: str
    new_id: str | None
    reason: str

    def line(self) -> str:
        arrow = f" -> {self.new_id}" if self.new_id else ""
        return f"{self.kind}/{self.old_id}{arrow}: {self.reason}"


class Stale(Exception):
    """A record the migration leaves alone; the message says why."""


def _task_config(task: str, preset: str | None = None) -> TaskConfig:
    """The current config of task ``name@version`` (in ``preset``'s prompt format where a reference names one);
    ``Stale`` when the task file or the preset is gone or the task is at another version."""
    try:
        config = read_task_config(task)
        return applied_config(load_preset(preset), config) if preset else config
    except SpecError as exc:
        raise Stale(f"task {task}: {exc}") from exc


def legacy_metric_versions(config: TaskConfig) -> dict[str, str]:
    """``{metric: LEGACY_VERSION}`` of the legacy metrics the task evaluates (``bench.metrics.identity``)."""
    return {**{name: LEGACY_VERSION for name in evaluated_metrics(config) if name in LEGACY_METRICS},
            **{name: LEGACY_VERSION for name in LEGACY_EVALUATIONS}}


def _check_task(task: Any, recorded: Any, config: TaskConfig) -> None:
    if recorded != config.digest:
        raise Stale(f"task {task} changed since the record was made (task digest)")


def versioned_run_spec(record: RunRecord) -> tuple[str, dict[str, Any]]:
    """(new id, new spec) of a run record made before the versions entered the ids: its spec with
    ``method_version`` and ``model["metric_versions"]`` of that time, and that spec's hash; ``Stale`` otherwise."""
    spec, model = record.spec, record.spec.get("model") or {}
    if "method_version" in spec or "metric_versions" in model:
        raise Stale("already carries its versions")
    if model.get("eval_version") != EVAL_VERSION:
        raise Stale(f"engine version {model.get('eval_version')} is not the current {EVAL_VERSION}: stale")
    if content_hash(spec) != record.id:
        raise Stale("its id does not match its spec")
    config = _task_config(str(spec.get("task")))
    _check_task(spec.get("task"), model.get("task_digest"), config)
    new_spec = {**spec, "method_version": LEGACY_VERSION,
                "model": {**model, "metric_versions": legacy_metric_versions(config)}}
    return content_hash(new_spec), new_spec


def versioned_reference(record: ReferenceRecord) -> tuple[str, dict[str, Any]]:
    """(new id, new spec) of a reference record made before the metric versions entered its id; ``Stale``
    otherwise (another engine version gives another old-form id, so the recomputed old id must match)."""
    spec = record.spec
    if "metric_versions" in spec:
        raise Stale("already carries its versions")
    preset = spec.get("preset")
    config = _task_config(str(spec.get("task")), str(preset) if preset else None)
    _check_task(spec.get("task"), spec.get("task_digest"), config)
    model = ("preset", load_preset(str(preset)).digest) if preset else ("weights", str(spec.get("weights")))
    key = (config.digest, str(spec.get("split")), str(spec.get("model")), model, EVAL_VERSION)
    if reference_key(*key, None) != record.id:
        raise Stale(f"its id is not that of engine version {EVAL_VERSION} (stale, or not a reference record)")
    metrics = legacy_metric_versions(config)
    return reference_key(*key, metrics), {**spec, "eval_version": EVAL_VERSION, "metric_versions": metrics}


VERSIONED: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    ReferenceRecord.FOLDER: versioned_reference, RunRecord.FOLDER: versioned_run_spec}


def migrate_record(store: Store, kind: str, old_id: str) -> Migration:
    """Re-key the record ``old_id`` of ``kind`` (``refs`` or ``runs``) under the id of its versioned spec, unless it
    is left alone (``Stale``) or the new id is stored already (migrated before, or computed by the current code)."""
    record: Record | None = store.load(kind, old_id)
    if record is None:
        return Migration(kind, old_id, None, "no readable result.json")
    try:
        new_id, spec = VERSIONED[kind](record)
    except Stale as exc:
        return Migration(kind, old_id, None, f"left alone: {exc}")
    if store.load(kind, new_id) is not None:
        return Migration(kind, old_id, new_id, "already present under the new id")
    store.write_rekeyed(record.rekeyed(new_id, spec), old_id)
    return Migration(kind, old_id, new_id, "re-keyed")


def _migrate_search(store: Store, search_id: str, renamed: Mapping[str, str]) -> Migration:
    """Point a search summary's trials (and so its selected run) at the re-keyed run ids."""
    summary = store.load_search(search_id)
    if summary is None:
        return Migration(SEARCHES, search_id, None, "left alone: no readable summary")
    if not any(t.run_id in renamed for t in summary.trials):
        return Migration(SEARCHES, search_id, None, "left alone: no re-keyed trial")
    store.write_search(summary.with_run_ids(renamed))
    return Migration(SEARCHES, search_id, search_id, "trial run ids re-keyed")


def migrate_store(store: Store) -> list[Migration]:
    """Re-key every reference and run record of ``store`` made before the versions entered the ids (see the
    module docstring), then point the search summaries at the new run ids. One ``Migration`` per record."""
    done = [migrate_record(store, kind, record_id) for kind in (ReferenceRecord.FOLDER, RunRecord.FOLDER)
            for record_id in store.ids(kind)]
    renamed = {m.old_id: m.new_id for m in done if m.kind == RunRecord.FOLDER and m.new_id}
    return done + [_migrate_search(store, search_id, renamed) for search_id in store.search_ids()]
