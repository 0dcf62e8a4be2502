"""Structured metric keys (as HELM's ``MetricName``): what a board column or a stored metric names, and the
declaration of an evaluation outside the one-pass engine whose numbers a record holds.

A ``MetricKey`` is (``evaluation``, ``name``, ``split``, ``view``, ``attack``):

- ``evaluation``: ``metric`` for the one-pass engine's registered metrics (``bench.registry.METRICS``), ``control``
  for the calibration's numbers (``alpha``, ``tradeoff_auc``), or a registered evaluation (``EvaluationSpec`` in
  ``bench.registry.EVALUATIONS``: ``lm_eval``, ``relearn``, ``geffect``);
- ``view``: ``raw`` (the final model) or ``calibrated`` (the model mixed back to matched utility, arXiv 2406.09179);
- ``attack``: the attack or perturbation the number is measured under; None (no attack) everywhere today.

The string form is what board files and stored records use (``format_key``; ``bench.grid.columns.parse_key`` reads
it back): ``[calibrated/]<split>/<name>`` or ``[calibrated/]<name>`` (engine metrics), ``<name>`` (control),
``<evaluation>/<split>/<name>`` (``lm_eval/<task>/<metric>``, ``relearn/forget/es``) or, for an evaluation that
names its quantity first, ``<evaluation>/<name>/<split>`` (``geffect/cumulative/forget``); an attack is an
``@<attack>`` suffix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.runtime.sections import MetricEntry

RAW, CALIBRATED = "raw", "calibrated"
ENGINE, CONTROL = "metric", "control"
CALIBRATED_PREFIX = f"{CALIBRATED}/"
ATTACK_MARK = "@"


@dataclass(frozen=True)
class MetricKey:
    """One number of a record (see the module docstring)."""

    name: str
    split: str | None = None
    view: str = RAW
    attack: str | None = None
    evaluation: str = ENGINE

    @property
    def raw(self) -> MetricKey:
        """The same key in the raw view."""
        return MetricKey(self.name, self.split, RAW, self.attack, self.evaluation)


def format_key(key: MetricKey, name_first: bool = False) -> str:
    """The string form of ``key`` (``name_first``: its evaluation writes ``<name>/<split>``)."""
    parts = [key.name] if key.split is None else [key.name, key.split] if name_first else [key.split, key.name]
    if key.evaluation not in (ENGINE, CONTROL):
        parts.insert(0, key.evaluation)
    text = "/".join(parts)
    if key.view == CALIBRATED:
        text = CALIBRATED_PREFIX + text
    return text if key.attack is None else f"{text}{ATTACK_MARK}{key.attack}"


def split_key(text: str) -> tuple[str, str, str | None]:
    """(view, path, attack) of a key's string form: the ``calibrated/`` prefix and ``@attack`` suffix taken off."""
    path, _, attack = text.partition(ATTACK_MARK)
    view = CALIBRATED if path.startswith(CALIBRATED_PREFIX) else RAW
    return view, path.removeprefix(CALIBRATED_PREFIX), attack or None


def stored_entry(record: Any, key: MetricKey) -> MetricEntry | None:
    """The entry a record stores under ``key``'s raw string form in its ``metrics`` (how lm-eval and the relearning
    attack store their numbers: they have no calibrated form)."""
    return record.metrics.get(format_key(key.raw))


@dataclass(frozen=True)
class EvaluationSpec:
    """An evaluation outside the one-pass engine, registered in ``bench.registry.EVALUATIONS`` under the first part of
    its keys (``lm_eval``, ``relearn``, ``geffect``): what its keys mean and how a board reads them.

    ``direction(key)``: ``higher`` / ``lower`` / ``none``; ``describe(key)``: one line for a tooltip;
    ``problem(key, text)``: why ``text`` (parsed as ``key``) is not one of its keys, one line, or None;
    ``read(record, key)``: the entry a typed record holds for ``key`` (None: it has none); ``read_text``: the value of
    a text key. ``better``, ``keys``, ``description`` and ``source`` are its row of ``docs/metrics.md``. A
    ``run_only`` evaluation is blank on reference rows; none has a calibrated form.

    ``compute(model, tokenizer, data)``, where given, runs the evaluation on every evaluated model (a run's final
    model and each reference model; not calibration probes) and returns the record metrics it adds, keyed by their
    raw string form (``bench.run.record.external_metrics`` calls it; its wall time is stored as
    ``<name>_seconds``). An evaluation without ``compute`` reads what another stage stored (the G-effect summary is
    recorded during training).
    """

    name: str
    better: str
    keys: str
    description: str
    source: str
    direction: Callable[[MetricKey], str]
    describe: Callable[[MetricKey], str]
    problem: Callable[[MetricKey, str], str | None]
    read: Callable[[Any, MetricKey], MetricEntry | None] = stored_entry
    read_text: Callable[[Any, MetricKey], str | None] | None = None
    name_first: bool = False
    number_format: Callable[[MetricKey], str] = lambda key: ".3f"  # how a board prints its values
    text_names: frozenset[str] = frozenset()
    known: tuple[str, ...] = ()  # its keys where they are a fixed set (for a did-you-mean)
    run_only: bool = False
    compute: Callable[[Any, Any, Any], dict[str, MetricEntry]] | None = None
    version: str = "1"  # of its numbers: with ``compute``, part of every run and reference id (bench.metrics.identity)
