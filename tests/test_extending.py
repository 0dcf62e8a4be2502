"""Extending the suite from one plug-in file (README "Extending"): a new metric family, a new column kind (a
registered evaluation) and a new method, each added by a temporary file next to a board, each seen on that board.

The board runs in a subprocess (``python -m bench.cli``): what a plug-in registers stays out of this test session's
registries, so no other test's records see the plug-in's metric."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from bench.cli.main import main
from tests.conftest import MINI

PLUGIN = '''
"""A metric family, a column kind and a method, registered by one file."""
import numpy as np
import torch

from bench.methods.base import LossContext, Method, UnlearnBatch, sequence_nll
from bench.metrics.base import ItemMetric
from bench.registry import EVALUATIONS, METHODS, METRICS
from bench.runtime.keys import EvaluationSpec
from bench.runtime.sections import MetricEntry

METRICS.add("answer_tokens", ItemMetric(
    "answer_tokens", "number of answer tokens an item is scored on", direction="none", forget_direction="none",
    per_item=lambda scores: np.array([float(len(t.logprobs)) for t in scores.answer])))


def weight_norm(model, tokenizer, data):
    """sqrt(sum of squared weights): one number per evaluated model."""
    total = sum(float(p.detach().double().pow(2).sum()) for p in model.parameters())
    return {"weightnorm/all/l2": MetricEntry(total ** 0.5)}


EVALUATIONS.add("weightnorm", EvaluationSpec(
    "weightnorm", better="none", keys="`weightnorm/all/l2`", description="L2 norm of all weights", source="test",
    direction=lambda key: "none", describe=lambda key: "L2 norm of all weights",
    problem=lambda key, text: None if key.split == "all" and key.name == "l2" else f"unknown column {text!r}",
    compute=weight_norm))


@METHODS.register("half_ascent")
class HalfAscent(Method):
    """L = -0.5 * NLL(forget): gradient ascent at half strength."""

    paper = "test plug-in"

    def forget_loss(self, model: torch.nn.Module, batch: UnlearnBatch, ctx: LossContext):
        return -0.5 * sequence_nll(model, batch.forget).mean(), {}
'''

BOARD = f"""name: extended
version: "1"
plugins: [extras.py]
tasks: [{{task: {MINI}, split: forget10}}]
methods: [{{method: ga, label: GA}}, {{method: half_ascent, label: Half}}]
seeds: [0]
budget: {{steps: 2, lr: 0.0005, batch_size: 8}}
columns: [forget/es, forget/answer_tokens, weightnorm/all/l2]
sort: {{by: forget/es, descending: false}}
"""


def _ubench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_a_metric_a_column_kind_and_a_method_from_one_plugin_file_reach_the_board(tmp_path: Path) -> None:
    folder = tmp_path / "boards"
    folder.mkdir()
    (folder / "extras.py").write_text(PLUGIN)
    board = folder / "extended.yaml"
    board.write_text(BOARD)
    # run from another folder: the plug-in path is read from the board file's folder, not the working directory
    done = _ubench("run", str(board), "--jobs", "1", "--results", str(tmp_path / "store"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(folder / "extended" / "board.csv", newline="") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    target, oracle = "target (before unlearning)", "retain oracle"
    assert {"GA", "Half", target, oracle} <= set(rows)
    for label in ("GA", "Half", target, oracle):
        assert float(rows[label]["forget/answer_tokens"]) >= 1  # mean answer length of the forget items
        assert float(rows[label]["weightnorm/all/l2"]) > 0
    # the forget answers are the same text for every model: the new metric is a property of the data
    assert rows["GA"]["forget/answer_tokens"] == rows[target]["forget/answer_tokens"]
    # unlearning moved the weights: the evaluation sees a different model on each row
    assert rows["GA"]["weightnorm/all/l2"] != rows[target]["weightnorm/all/l2"]
    assert rows["Half"]["weightnorm/all/l2"] != rows["GA"]["weightnorm/all/l2"]
    markdown = (folder / "extended" / "board.md").read_text()
    assert "forget/answer_tokens" in markdown and "weightnorm/all/l2" in markdown and "Half" in markdown


def test_a_board_column_whose_plugin_is_missing_names_the_column(tmp_path: Path, capsys) -> None:
    board = tmp_path / "extended.yaml"
    board.write_text(BOARD.replace("plugins: [extras.py]\n", "").replace("{method: half_ascent, label: Half}",
                                                                         "{method: ga, label: GA2}"))
    # in this process: nothing is registered, so no other test sees a plug-in
    assert main(["run", str(board), "--jobs", "1", "--results", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert "answer_tokens" in err and str(board) in err
    assert not (tmp_path / "store").exists()
