"""Re-key the stored records made before run and reference ids carried the method's and the metrics' versions
(``ubench store migrate``).

Ids are content hashes of their specs, so adding ``method_version`` and ``model["metric_versions"]`` to a run spec
(``bench.run.runspec``) and the metric versions to a reference id (``bench.run.references.reference_key``) gave
every record a new id. A record made by the evaluation engine of version ``EVAL_VERSION`` before that change is
still exactly what the current code computes: every method and metric was then at version ``LEGACY_VERSION`` and
the registered metrics were ``LEGACY_METRICS``. The migration states that fact in the record: new spec = old spec
+ those versions, new id = its hash, written with the store's atomic writer (``Store.write``: spec, per-item rows
and every other file of the record, ``result.json`` last).

What the migration stamps is what made the record, not what the code says today: a method or metric bumped since
(or a metric added since) gives the migrated spec another id than the current code computes, so such a record is
recomputed, never passed off as current. Left alone, each with its reason: records that already carry the versions,
records of another engine version (stale: recomputed anyway), records whose id does not match their spec, and
records of a task whose file changed or is gone.

The old folder is kept: the store is append-only and content-addressed (an id names one spec forever, so the old
folder stays a correct record of the old spec), a checkout of older code (a release's own commit, another worktree
on the same store) still finds its records under the old ids, and a second migration finds the same records and
rewrites nothing. Search summaries (``<store>/searches/``) list their trials by run id: theirs are rewritten to the
new ids in place (a search id hashes the search's inputs, not its trials', so it is unchanged).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.tasks import load_task_config
from bench.metrics.identity import evaluated_metrics
from bench.models.presets import load_preset
from bench.run.references import EVAL_VERSION, reference_key
from bench.runtime.store import Store, atomic_write_text, dumps
from bench.specs.mapping import SpecError, content_hash

LEGACY_VERSION = "1"  # the version of every method and metric when versions entered the ids
# the metrics registered when versions entered the ids (engine version 8): what a migrated record was scored with
LEGACY_METRICS = frozenset({
    "em", "es", "es_rephrased", "exact_answer", "fluency", "forget_quality", "gibberish", "knowmem",
    "mia_auc_gradnorm", "mia_auc_gradnorm_l2", "mia_auc_loss", "mia_auc_mink", "mia_auc_minkpp", "mia_auc_zlib",
    "mia_gradnorm", "mia_gradnorm_l2", "mia_loss", "mia_mink", "mia_minkpp", "mia_zlib", "model_utility",
    "privleak_gradnorm", "privleak_gradnorm_l2", "privleak_loss", "privleak_mink", "privleak_minkpp",
    "privleak_zlib", "prob", "rouge_l", "truth_ratio", "truth_ratio_raw", "verbmem"})
RECORD_FILES = ("result.json", "spec.json", "per_item.jsonl")  # written by ``Store.write`` from the record itself


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


def legacy_metric_versions(task: str) -> tuple[str, dict[str, str]]:
    """(task digest, ``{metric: LEGACY_VERSION}`` of the legacy metrics the task evaluates) for task ``name@version``;
    ``Stale`` when the task file is gone or at another version."""
    try:
        config = load_task_config(task)
    except SpecError as exc:
        raise Stale(f"task {task}: {exc}") from exc
    return config.digest, {name: LEGACY_VERSION for name in evaluated_metrics(config) if name in LEGACY_METRICS}


def _check_task(task: Any, recorded: Any, digest: str) -> None:
    if recorded != digest:
        raise Stale(f"task {task} changed since the record was made (task digest)")


def rekey_run(record: dict, old_id: str) -> tuple[str, dict]:
    """(new id, new record) of a run record made before the versions entered the ids; ``Stale`` otherwise."""
    spec = record.get("spec") or {}
    model = spec.get("model") or {}
    if "method_version" in spec or "metric_versions" in model:
        raise Stale("already carries its versions")
    if model.get("eval_version") != EVAL_VERSION:
        raise Stale(f"engine version {model.get('eval_version')} is not the current {EVAL_VERSION}: stale")
    if content_hash(spec) != old_id or record.get("run_id") != old_id:
        raise Stale("its id does not match its spec")
    digest, metrics = legacy_metric_versions(str(spec.get("task")))
    _check_task(spec.get("task"), model.get("task_digest"), digest)
    new_spec = {**spec, "method_version": LEGACY_VERSION, "model": {**model, "metric_versions": metrics}}
    new_id = content_hash(new_spec)
    return new_id, {**record, "run_id": new_id, "spec": new_spec}


def rekey_reference(record: dict, old_id: str) -> tuple[str, dict]:
    """(new id, new record) of a reference record made before the metric versions entered its id; ``Stale``
    otherwise (another engine version gives another old-form id, so the recomputed old id must match)."""
    spec = record.get("spec") or {}
    if "metric_versions" in spec:
        raise Stale("already carries its versions")
    digest, metrics = legacy_metric_versions(str(spec.get("task")))
    _check_task(spec.get("task"), spec.get("task_digest"), digest)
    if "preset" in spec:
        try:
            model = ("preset", load_preset(spec["preset"]).digest)
        except SpecError as exc:
            raise Stale(f"preset {spec['preset']}: {exc}") from exc
    else:
        model = ("weights", str(spec.get("weights")))
    key = (digest, str(spec.get("split")), str(spec.get("model")), model, EVAL_VERSION)
    if reference_key(*key, None) != old_id or record.get("record_id") != old_id:
        raise Stale(f"its id is not that of engine version {EVAL_VERSION} (stale, or not a reference record)")
    new_id = reference_key(*key, metrics)
    new_spec = {**spec, "eval_version": EVAL_VERSION, "metric_versions": metrics}
    return new_id, {**record, "record_id": new_id, "spec": new_spec}


def _extra_files(folder: Path) -> dict[str, str]:
    """The record's files other than those ``Store.write`` derives from the record (``geffect.jsonl``)."""
    return {p.name: p.read_text() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.name not in RECORD_FILES}


def _migrate_record(store: Store, kind: str, old_id: str,
                    rekey: Callable[[dict, str], tuple[str, dict]]) -> Migration:
    record = store.load(kind, old_id)
    if record is None:
        return Migration(kind, old_id, None, "no readable result.json")
    try:
        new_id, new_record = rekey(record, old_id)
    except Stale as exc:
        return Migration(kind, old_id, None, f"left alone: {exc}")
    if store.load(kind, new_id) is not None:  # migrated before, or computed by the current code: kept as it is
        return Migration(kind, old_id, new_id, "already present under the new id")
    store.write(kind, new_id, new_record, store.per_item(kind, old_id), _extra_files(store.folder(kind, old_id)))
    return Migration(kind, old_id, new_id, "re-keyed")


def _rewrite_search(path: Path, renamed: dict[str, str]) -> Migration:
    """Point a search summary's trials (and selected run) at the re-keyed run ids."""
    summary: dict[str, Any] = json.loads(path.read_text())
    changed = False
    for trial in summary.get("trials") or []:
        if trial.get("run_id") in renamed:
            trial["run_id"], changed = renamed[trial["run_id"]], True
    if summary.get("selected_run_id") in renamed:
        summary["selected_run_id"], changed = renamed[summary["selected_run_id"]], True
    if changed:
        atomic_write_text(path, dumps(summary))
    return Migration("searches", path.stem, path.stem if changed else None,
                     "trial run ids re-keyed" if changed else "left alone: no re-keyed trial")


def migrate_store(store: Store) -> list[Migration]:
    """Re-key every reference and run record of ``store`` made before the versions entered the ids (see the
    module docstring), then point the search summaries at the new run ids. One ``Migration`` per record."""
    done: list[Migration] = []
    for kind, rekey in (("refs", rekey_reference), ("runs", rekey_run)):
        folder = store.root / kind
        ids = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        done += [_migrate_record(store, kind, record_id, rekey) for record_id in ids]
    renamed = {m.old_id: m.new_id for m in done if m.kind == "runs" and m.new_id}
    searches = store.root / "searches"
    if searches.is_dir():
        done += [_rewrite_search(path, renamed) for path in sorted(searches.glob("*.json"))]
    return done
