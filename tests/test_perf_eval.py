"""The evaluation-cost benchmark's token accounting (``ubench perf --only eval``): the minimal and naive counts by
hand, and the measured count on the mini task."""

from __future__ import annotations

from bench.metrics.engine import CostLedger
from bench.perf.evaluation import _padded, _padded_generation, eval_cost, minimal_tokens, naive_tokens


def test_counts_by_hand() -> None:
    ledger = CostLedger(batch_size=2, products={"s": {"answer": [3, 5, 4], "paraphrase": [2, 2, 2]}},
                        generations={"s": ([4, 6, 5], [3, 1, 2])},
                        reads={"s": [("answer",), ("answer",), ("paraphrase",), ("generation",)]})
    # minimal: every sequence once, unpadded (12 + 6), and prompt + generated - 1 per item (4+2 + 6+0 + 5+1)
    assert minimal_tokens(ledger) == 12 + 6 + 18
    # dataset-order batches of 2: [3, 5] -> 2 * 5, [4] -> 4
    assert _padded([3, 5, 4], 2) == 14
    # generation batches: [4, 6] prompts padded to 6, max generated 3 -> 2 * 6 + 2 * 2; [5] with 2 -> 5 + 1
    assert _padded_generation([4, 6, 5], [3, 1, 2], 2) == 12 + 4 + 6
    assert naive_tokens(ledger) == 2 * 14 + 6 + 22


def test_mini_evaluation_is_near_the_minimum_and_far_below_naive() -> None:
    report = eval_cost("synthetic-mini", "forget10")
    # below the one-pass-per-sequence minimum: a prompt shared by an item's answers runs once
    assert 0.5 * report.minimal <= report.measured < report.minimal
    assert report.naive > 2 * report.measured
    assert set(report.per_split) == {"forget", "retain", "world_facts", "holdout", "forget_bio", "retain_bio"}
