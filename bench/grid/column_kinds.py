"""The kinds of metric key (``bench.runtime.keys.MetricKey``) a board may show, each knowing its keys' direction of
better, description and validation, how to read a key's entry (value, interval, bootstrap draws) or text from a
typed record, and how a board prints it:

- ``EngineKind``: the one-pass engine's registered metrics (``bench.registry.METRICS``), raw from a record's
  ``metrics`` or calibrated (theta(alpha*), arXiv 2406.09179) from its ``control.calibrated_metrics``; on a reference
  record the calibrated value is the raw one;
- ``ControlKind``: ``alpha`` (the calibrated mixing weight alpha*, ``control.calibration.alpha``) and
  ``tradeoff_auc`` (``control.tradeoff.auc``), both higher is better; blank on reference rows;
- ``EvaluationKind``: a registered evaluation (``bench.registry.EVALUATIONS``: lm-eval utility, the relearning
  attack, the G-effect summary), as its ``EvaluationSpec`` declares.
"""

from __future__ import annotations

from bench.data.splits import FORGET_SPLITS, SPLIT_ROLES, SPLITS
from bench.metrics.base import ItemMetric
from bench.registry import ATTACKS, METRICS
from bench.runtime.keys import CALIBRATED, CALIBRATED_PREFIX, EvaluationSpec, MetricKey, format_key
from bench.runtime.records import Record
from bench.runtime.sections import MetricEntry


class KeyKind:
    """What every kind answers for its keys (see the module docstring); the defaults are a number's."""

    run_only = False  # blank on reference rows
    calibrated = False  # has a calibrated view

    def text_of(self, key: MetricKey) -> str:
        return format_key(key)

    def direction(self, key: MetricKey) -> str:
        raise NotImplementedError

    def describe(self, key: MetricKey) -> str:
        raise NotImplementedError

    def problem(self, key: MetricKey, text: str) -> str | None:
        raise NotImplementedError

    def entry(self, record: Record, key: MetricKey) -> MetricEntry | None:
        raise NotImplementedError

    def text(self, record: Record, key: MetricKey) -> str | None:
        return None

    def is_text(self, key: MetricKey) -> bool:
        return False

    def number_format(self, key: MetricKey) -> str:
        return ".3f"

    def known(self) -> list[str]:
        """Its valid keys where they are a fixed set (for a did-you-mean)."""
        return []


class EngineKind(KeyKind):
    """The engine's registered metrics: ``<split>/<metric>`` (item metrics) or ``<metric>`` (model metrics)."""

    calibrated = True

    def direction(self, key: MetricKey) -> str:
        """A metric's declared direction; an item metric's ``forget_direction`` on a forget split."""
        metric = METRICS.get(key.name)
        if isinstance(metric, ItemMetric) and key.split in FORGET_SPLITS:
            return metric.forget_direction
        return metric.direction

    def describe(self, key: MetricKey) -> str:
        try:
            text = METRICS.get(key.name).description
        except LookupError:
            return format_key(key)
        if key.split:
            text += f"; on the {key.split} split"
        if key.view == CALIBRATED:
            text += "; of the calibrated model θ(α*) (reference rows: the raw value)"
        return text

    def raw_keys(self) -> list[str]:
        """Every valid raw key: item metrics on each split of a role they are defined on, then model metrics."""
        out: list[str] = []
        for name in METRICS.names():
            metric = METRICS.get(name)
            if isinstance(metric, ItemMetric):
                out.extend(f"{split}/{name}" for split in SPLITS if SPLIT_ROLES[split] in metric.roles)
            else:
                out.append(name)
        return out

    def known(self) -> list[str]:
        raw = self.raw_keys()
        return [*raw, *(CALIBRATED_PREFIX + key for key in raw)]

    def problem(self, key: MetricKey, text: str) -> str | None:
        """Why a key of a registered metric (``bench.grid.columns`` handles an unknown name) is not valid."""
        prefix = CALIBRATED_PREFIX if key.view == CALIBRATED else ""
        metric = METRICS.get(key.name)
        is_item = isinstance(metric, ItemMetric)
        if is_item and key.split not in SPLITS:
            return f"{key.name} is per split; write {', '.join(f'{prefix}{s}/{key.name}' for s in SPLITS[:-1])} " \
                   f"or {prefix}{SPLITS[-1]}/{key.name}"
        if not is_item and key.split:
            return f"{key.name} is not per split; write {prefix}{key.name}"
        if is_item and SPLIT_ROLES[key.split] not in metric.roles:
            valid = [s for s in SPLITS if SPLIT_ROLES[s] in metric.roles]
            return f"{key.name} is not defined on {key.split}; write one of " \
                   f"{', '.join(prefix + s + '/' + key.name for s in valid)}"
        return None

    def entry(self, record: Record, key: MetricKey) -> MetricEntry | None:
        return record.metric(format_key(key.raw), calibrated=key.view == CALIBRATED)

    def number_format(self, key: MetricKey) -> str:
        return METRICS.get(key.name).number_format


class AttackMetricKind(EngineKind):
    """A number an attack measures that is no registered metric (``forget/uds@patch``, ``forget/layer@logit_lens``):
    read like an engine metric, its direction and meaning from the attack's declaration (``Attack.directions``)."""

    def direction(self, key: MetricKey) -> str:
        return ATTACKS.get(key.attack).directions.get(key.name, "none")

    def describe(self, key: MetricKey) -> str:
        attack = ATTACKS.get(key.attack)
        return f"{key.name} of the {attack.name} attack on the {key.split} split: {attack.summary}"

    def problem(self, key: MetricKey, text: str) -> str | None:
        metrics = ATTACKS.get(key.attack).metrics
        if key.name not in metrics:
            return f"unknown column {text!r}; the {key.attack} attack measures {', '.join(metrics)}"
        if key.split != "forget":  # an attack's own numbers (UDS, the lens layer) are about the forget set
            return f"{key.name} of the {key.attack} attack is measured on the forget set only; " \
                   f"write forget/{key.name}@{key.attack}"
        return None

    def number_format(self, key: MetricKey) -> str:
        return ".3f"


CONTROL_DESCRIPTIONS = {
    "alpha": "α*: the calibrated mixing weight of θ(α) = (1 − α)·θ_target + α·θ_unlearned (arXiv 2406.09179); "
             "1: the raw endpoint already keeps the utility",
    "tradeoff_auc": "area under forget efficacy vs utility ratio over the probed α (arXiv 2406.09179)"}


class ControlKind(KeyKind):
    """``alpha`` and ``tradeoff_auc``: read from a run's control section; higher is better."""

    run_only = True

    def direction(self, key: MetricKey) -> str:
        return "higher"

    def describe(self, key: MetricKey) -> str:
        return CONTROL_DESCRIPTIONS[key.name]

    def problem(self, key: MetricKey, text: str) -> str | None:
        return None if key.name in CONTROL_DESCRIPTIONS and key.split is None else f"unknown column {text!r}"

    def known(self) -> list[str]:
        return list(CONTROL_DESCRIPTIONS)

    def entry(self, record: Record, key: MetricKey) -> MetricEntry | None:
        control = getattr(record, "control", None)  # a reference record has no control section
        if control is None:
            return None
        section = control.calibration if key.name == "alpha" else control.tradeoff
        value = None if section is None else section.alpha if key.name == "alpha" else section.auc
        return None if value is None else MetricEntry(value)


class EvaluationKind(KeyKind):
    """A registered evaluation, as its ``EvaluationSpec`` declares."""

    def __init__(self, spec: EvaluationSpec) -> None:
        self.spec = spec
        self.run_only = spec.run_only

    def text_of(self, key: MetricKey) -> str:
        return format_key(key, self.spec.name_first)

    def direction(self, key: MetricKey) -> str:
        return self.spec.direction(key)

    def describe(self, key: MetricKey) -> str:
        return self.spec.describe(key)

    def problem(self, key: MetricKey, text: str) -> str | None:
        return self.spec.problem(key, text)

    def entry(self, record: Record, key: MetricKey) -> MetricEntry | None:
        return None if self.is_text(key) else self.spec.read(record, key)

    def text(self, record: Record, key: MetricKey) -> str | None:
        return self.spec.read_text(record, key) if self.is_text(key) and self.spec.read_text else None

    def is_text(self, key: MetricKey) -> bool:
        return key.name in self.spec.text_names

    def number_format(self, key: MetricKey) -> str:
        return self.spec.number_format(key)

    def known(self) -> list[str]:
        return list(self.spec.known)
