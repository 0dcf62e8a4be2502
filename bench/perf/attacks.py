"""``ubench perf --only attacks``: each attack's cost relative to one evaluation of the same model.

On the task's target at the pinned thread count: the time of one plain engine evaluation (every QA split and the
free-text splits, no GradNorm: what every evaluated model gets), then the time of each registered attack on the
same model (quantization included; the patching attack loads the target and oracle once, before the clock) and
its ratio to that evaluation. The ratio is the attack's cost in units of "one more evaluation"; a board pays it
per evaluated model (final, calibrated, and both references).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.attacks.base import AttackContext
from bench.data.tasks import load_task
from bench.metrics.evaluate import SELF, evaluate
from bench.models.tiny import get_model, get_tokenizer
from bench.registry import ATTACKS
from bench.runtime.numerics import pin_threads


@dataclass
class AttackCostReport:
    task: str
    evaluation_seconds: float
    seconds: dict[str, float]
    cost: dict[str, str]

    def text(self) -> str:
        lines = [f"attack cost on the target of {self.task} (one evaluation: {self.evaluation_seconds:.2f} s)"]
        for name, seconds in sorted(self.seconds.items(), key=lambda kv: kv[1]):
            lines.append(f"  {name:11s} {self.cost[name]:9s} {seconds:6.2f} s  "
                         f"{seconds / self.evaluation_seconds:5.2f} x one evaluation")
        return "\n".join(lines)


def attack_cost(task: str = "synthetic", split: str = "forget10") -> AttackCostReport:
    pin_threads()
    data = load_task(task, split)
    tokenizer = get_tokenizer(data)
    target, oracle = get_model(data, "target"), get_model(data, "oracle")
    model = target.load().eval()
    ctx = AttackContext(tokenizer, data, target.load, oracle.load)
    ctx.reference("target"), ctx.reference("oracle")  # loaded before the clock
    evaluate(model, tokenizer, data, SELF)  # warm-up: encodings cached, as in a run's second evaluation
    start = time.perf_counter()
    evaluate(model, tokenizer, data, SELF)
    unit = time.perf_counter() - start
    seconds, cost = {}, {}
    for name in ATTACKS.names():
        attack = ATTACKS.get(name)()
        start = time.perf_counter()
        attack.scores(model, ctx)
        seconds[name], cost[name] = time.perf_counter() - start, attack.cost
    return AttackCostReport(data.config.ref, unit, seconds, cost)
