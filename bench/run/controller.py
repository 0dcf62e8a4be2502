"""The control protocol of one run (arXiv 2406.09179): step-budget checkpoints and early stopping during training,
calibration by model mixing and the trade-off curve after it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from bench.data.tasks import TaskData
from bench.methods.base import StepState
from bench.metrics.evaluate import Evaluation
from bench.run.calibrate import GRID, AnswerScorer, MixedModel, MixingProbe, ProbeResult, calibrate, pareto_auc
from bench.run.record import metrics_dict
from bench.runtime.records import ReferenceRecord
from bench.runtime.sections import Calibration, Control, MetricEntry, Tradeoff
from bench.specs.run import ControlSpec

UTILITY_METRIC = {"retain_es": "retain/es", "retain_rouge": "retain/rouge_l", "model_utility": "model_utility"}

MetricsFn = Callable[[torch.nn.Module], dict[str, MetricEntry]]


class Controller:
    """Holds what control needs across a run: U(target) and forget ES(target) from the target's reference record,
    the target weights (for mixing / rollback) and one ``AnswerScorer`` whose encodings every probe reuses."""

    def __init__(self, spec: ControlSpec, data: TaskData, tokenizer, target_record: ReferenceRecord,
                 target_state: dict[str, torch.Tensor], full_metrics: MetricsFn,
                 attacked: Callable[[torch.nn.Module, dict[str, MetricEntry]], dict[str, MetricEntry]] | None = None
                 ) -> None:
        self.spec, self.data, self.tokenizer = spec, data, tokenizer
        metrics = target_record.metrics
        self.u_target = float(metrics[UTILITY_METRIC[spec.utility]].value)
        self.es_target = float(metrics["forget/es"].value)
        self.target_state = target_state
        self._scorer: AnswerScorer | None = None
        self.checkpoints: list[dict] = []
        self._last_passing: dict[str, torch.Tensor] | None = None
        self.full_metrics = full_metrics
        self.attacked = attacked  # the board's attacks on the calibrated model (None: the board runs none)

    @property
    def threshold(self) -> float:
        return self.spec.tau * self.u_target

    @property
    def scorer(self) -> AnswerScorer:
        if self._scorer is None:
            self._scorer = AnswerScorer(self.tokenizer, self.data)
        return self._scorer

    def callbacks(self) -> list[Callable]:
        return [self._checkpoint]

    def _utility_now(self, model: torch.nn.Module, retain_es: float) -> float:
        if self.spec.utility == "retain_es":
            return retain_es
        return float(self.full_metrics(model)[UTILITY_METRIC[self.spec.utility]].value)

    def _checkpoint(self, model: torch.nn.Module, state: StepState) -> None:
        """Step-budget checkpoint: record U and forget ES; under ``early_stop`` stop once U < tau * U(target) and
        roll the weights back to the last checkpoint that passed (the target itself if none did)."""
        forget_es, retain_es = self.scorer(model)
        utility = self._utility_now(model, retain_es)
        passed = utility >= self.threshold
        self.checkpoints.append({"step": state.step, "utility": utility, "forget_es": forget_es,
                                 "passed": passed})
        if self.spec.kind != "early_stop":
            return
        if passed:
            self._last_passing = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        with torch.no_grad():
            model.load_state_dict(self._last_passing or self.target_state)
        state.stop = True

    def finish(self, model: torch.nn.Module, evaluation: Evaluation,
               raw_attacks: dict[str, MetricEntry] | None = None) -> Control:
        """After training and the raw evaluation: calibrate (``mixing``) and return the record's ``control``.
        ``raw_attacks``: the attacks' metrics of the final model, which are the calibrated ones at alpha = 1."""
        out = Control(spec=vars(self.spec).copy(), u_target=self.u_target, es_target=self.es_target,
                      checkpoints=self.checkpoints)
        if self.spec.kind != "mixing":
            return out
        utility_key = UTILITY_METRIC[self.spec.utility]
        u_unlearned = float(evaluation.metrics[utility_key].value)
        mixed = MixedModel(model, self.target_state)

        def utility_of(m: torch.nn.Module) -> dict[str, float]:
            return {self.spec.utility: float(self.full_metrics(m)[utility_key].value)}

        probe = MixingProbe(mixed, self.scorer, self.spec.utility,
                            utility_of if self.spec.utility != "retain_es" else None)
        probe.seed(ProbeResult(0.0, self.u_target, self.es_target))
        probe.seed(ProbeResult(1.0, u_unlearned, float(evaluation.metrics["forget/es"].value)))
        alpha = calibrate(probe, self.u_target, self.spec.tau, self.spec.tolerance)
        for a in GRID:
            probe(a)
        calibrated = probe(alpha)
        if alpha == 1.0:
            calibrated_metrics = {**metrics_dict(evaluation), **(raw_attacks or {})}
        else:
            mixed.set_alpha(alpha)
            calibrated_metrics = self.full_metrics(model)
            if self.attacked is not None:
                calibrated_metrics.update(self.attacked(model, calibrated_metrics))
        mixed.set_alpha(1.0)  # the probes leave the model mixed: hand back the unlearned model (lerp at 1 is exact)
        points = sorted(probe.cache.values(), key=lambda p: p.alpha)
        calibration = Calibration(alpha=alpha, tau=self.spec.tau, u_target=self.u_target, utility=self.spec.utility,
                                  u_unlearned=u_unlearned, u_alpha=calibrated.utility,
                                  forget_es_alpha=calibrated.forget_es, probe_calls=probe.probes,
                                  scoring_passes=probe.scoring_passes)
        tradeoff = Tradeoff(points=[vars(p) for p in points], auc=pareto_auc(points, self.u_target, self.es_target))
        return replace(out, calibration=calibration, calibrated_metrics=calibrated_metrics, tradeoff=tradeoff)
