"""Calibration by model mixing (arXiv 2406.09179, "Unlearning with Control").

theta(alpha) = (1 - alpha) theta_target + alpha theta_unlearned. Gradient-ascent methods over-unlearn, so raw
endpoints are not comparable; instead we take the largest alpha in [0, 1] whose utility U(theta(alpha)) stays at
least tau * U(theta_target) (bisection to ``tolerance``), and compare forget efficacy at that matched utility.

Every probe is one teacher-forced pass over the forget and retain answers together (``MixingProbe``), which gives
the utility *and* the forget extraction strength at that alpha, so each probe is also a point of the trade-off
curve; probes are memoised by alpha, the alpha = 0 point is the target's stored reference record and the alpha = 1
point comes from the same pass as any other probe, so the grid {0, .25, .5, .75, 1} shares its points with the
bisection ({.5, .25 or .75, ...}).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from bench.data.tasks import TaskData
from bench.data.tokenize import encode_qa
from bench.metrics.engine import teacher_forced
from bench.metrics.memorization import extraction_strength

UTILITIES = ("retain_es", "retain_rouge", "model_utility")
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


class MixedModel:
    """Writes theta(alpha) = (1 - alpha) theta_target + alpha theta_unlearned into ``model`` in place.

    Only floating-point parameters and buffers that differ are mixed; the two endpoints are kept as detached
    copies (two extra parameter sets, no per-probe allocation).
    """

    def __init__(self, model: torch.nn.Module, target_state: dict[str, torch.Tensor]) -> None:
        self.model = model
        unlearned = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.pairs = [(name, target_state[name].to(v.device), v) for name, v in unlearned.items()
                      if v.is_floating_point() and not torch.equal(target_state[name].to(v.device), v)]
        self.alpha = 1.0

    @torch.no_grad()
    def set_alpha(self, alpha: float) -> None:
        state = self.model.state_dict()
        for name, target, unlearned in self.pairs:
            state[name].copy_(torch.lerp(target, unlearned, alpha))
        self.alpha = alpha


@dataclass
class ProbeResult:
    alpha: float
    utility: float
    forget_es: float


class AnswerScorer:
    """Forget and retain extraction strength of a model from ONE teacher-forced pass over the evaluated forget and
    retain answers together (encoded once, reused for every probe and checkpoint)."""

    def __init__(self, tokenizer, data: TaskData) -> None:
        splits = data.eval_splits()
        template = data.config.prompt_template
        self.tokenizer, self.batch_size = tokenizer, data.config.eval.batch_size
        self.n_forget = len(splits["forget"])
        self.encoded = [encode_qa(tokenizer, template, q, a, add_eos=False) for name in ("forget", "retain")
                        for q, a in zip(splits[name]["question"], splits[name]["answer"])]
        self.passes = 0

    def __call__(self, model: torch.nn.Module) -> tuple[float, float]:
        """(mean forget ES, mean retain ES)."""
        scores = teacher_forced(model, self.encoded, self.tokenizer.pad_token_id, self.batch_size, moments=False)
        self.passes += 1
        es = np.array([extraction_strength(s.argmax_match) for s in scores])
        return float(es[: self.n_forget].mean()), float(es[self.n_forget:].mean())


class MixingProbe:
    """U and forget ES of theta(alpha), memoised by alpha. With ``retain_es`` (the paper's default utility) a probe
    is one ``AnswerScorer`` pass; ``retain_rouge`` and ``model_utility`` need generation, so they also run
    ``full_evaluation`` (selectable, slower)."""

    def __init__(self, mixed: MixedModel, scorer: AnswerScorer, utility: str,
                 full_evaluation: Callable[[torch.nn.Module], dict[str, float]] | None = None) -> None:
        if utility not in UTILITIES:
            raise ValueError(f"utility: must be one of {', '.join(UTILITIES)}, got {utility!r}")
        if utility != "retain_es" and full_evaluation is None:
            raise ValueError(f"utility {utility} needs the full evaluation")
        self.mixed, self.scorer, self.utility, self.full_evaluation = mixed, scorer, utility, full_evaluation
        self.cache: dict[float, ProbeResult] = {}
        self.scoring_passes = 0
        self.probes = 0

    def seed(self, result: ProbeResult) -> None:
        """A point known without a pass (alpha = 0: the target's record; alpha = 1: the run's own evaluation)."""
        self.cache[round(result.alpha, 6)] = result

    def __call__(self, alpha: float) -> ProbeResult:
        self.probes += 1
        key = round(alpha, 6)
        if key not in self.cache:
            self.mixed.set_alpha(alpha)
            forget_es, retain_es = self.scorer(self.mixed.model)
            self.scoring_passes += 1
            utility = retain_es if self.utility == "retain_es" else self.full_evaluation(self.mixed.model)[self.utility]
            self.cache[key] = ProbeResult(alpha, utility, forget_es)
        return self.cache[key]


@dataclass
class Calibration:
    alpha: float
    tau: float
    utility: str
    u_target: float
    u_alpha: float
    u_unlearned: float
    probes: list[ProbeResult] = field(default_factory=list)
    probe_count: int = 0
    scoring_passes: int = 0

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "tau": self.tau, "utility": self.utility, "u_target": self.u_target,
                "u_alpha": self.u_alpha, "u_unlearned": self.u_unlearned, "probe_count": self.probe_count,
                "scoring_passes": self.scoring_passes,
                "probes": [vars(p) for p in sorted(self.probes, key=lambda p: p.alpha)]}


def calibrate(probe: Callable[[float], ProbeResult], u_target: float, tau: float = 0.9,
              tolerance: float = 0.01) -> float:
    """Largest alpha in [0, 1] with U(theta(alpha)) >= tau * U(target), to within ``tolerance``.

    alpha = 1 if the unlearned model itself passes; otherwise bisection on [lo, hi] with U(lo) >= threshold
    (lo = 0 is the target) and U(hi) < threshold until hi - lo <= tolerance; returns lo, which always passes.
    """
    threshold = tau * u_target
    if probe(1.0).utility >= threshold:
        return 1.0
    lo, hi = 0.0, 1.0
    while hi - lo > tolerance:
        mid = round((lo + hi) / 2, 6)
        if probe(mid).utility >= threshold:
            lo = mid
        else:
            hi = mid
    return lo


def pareto_auc(points: list[ProbeResult], u_target: float, es_target: float) -> float:
    """Area under the forget-efficacy vs utility frontier, in [0, 1], higher is better.

    Each point maps to x = U(alpha) / U(target) (clipped to [0, 1]) and y = 1 - ES_forget(alpha) / ES_forget(target)
    (clipped to [0, 1]). The frontier E(x) = max{y_p : x_p >= x} is the best efficacy available at utility at
    least x; AUC = integral_0^1 E(x) dx (a step function, integrated exactly). A method that forgets everything
    while keeping the target's utility scores 1; one that forgets nothing, or only by destroying utility, ~0.
    """
    if not points or u_target <= 0 or es_target <= 0:
        return float("nan")
    xs = np.clip(np.array([p.utility / u_target for p in points]), 0.0, 1.0)
    ys = np.clip(np.array([1.0 - p.forget_es / es_target for p in points]), 0.0, 1.0)
    order = np.argsort(-xs)
    area, best, prev_x = 0.0, 0.0, 1.0
    for i in order:  # sweep x downwards: E(x) on (x_i, prev_x] is the best y among points with x_p >= prev_x
        area += best * (prev_x - xs[i])
        best = max(best, ys[i])
        prev_x = xs[i]
    return float(area + best * prev_x)
