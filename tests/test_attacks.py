"""The attack battery (bench.attacks) on the mini task, each against a case whose answer is known by hand:
re-quantizing a quantized model changes nothing and RTN stays within half a step of each weight; the logit lens at
the last layer is the model's own answer likelihood; patching a model into itself loses nothing; UDS by hand;
the oracle's attacked ES stays near its baseline; the worst case is the maximum; a board validates attack columns
and a board with attacks runs them on every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import MINI, mini_board


@pytest.fixture(scope="module")
def mini_models(mini_data):
    from bench.models.tiny import get_model, get_tokenizer

    tokenizer = get_tokenizer(mini_data)
    target, oracle = get_model(mini_data, "target"), get_model(mini_data, "oracle")
    return tokenizer, target, oracle


@pytest.fixture(scope="module")
def context(mini_data, mini_models):
    from bench.attacks.base import AttackContext

    tokenizer, target, oracle = mini_models
    return AttackContext(tokenizer, mini_data, target.load, oracle.load)


def test_quantizing_a_quantized_model_changes_nothing(mini_models):
    """Round-to-nearest on a min/max grid is idempotent: the quantized weights are already grid points."""
    from bench.attacks.quantization import _decoder_linears, _rtn, quantized_copy

    model = mini_models[1].load()
    for quantize in (_rtn(8, False), _rtn(4, False)):
        once = quantized_copy(model, quantize)
        twice = quantized_copy(once, quantize)
        for (name, a), (_, b) in zip(_decoder_linears(once), _decoder_linears(twice)):
            assert torch.allclose(a.weight, b.weight, atol=1e-6), name
    head = model.get_output_embeddings().weight
    assert torch.equal(quantized_copy(model, _rtn(4, False)).get_output_embeddings().weight, head)  # not quantized


# the 16 NF4 levels as published with QLoRA (Dettmers et al. 2023, appendix E)
NF4_LEVELS = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236023, 1.0]


def test_nf4_weights_are_published_levels_times_a_block_scale(mini_models):
    """Each block of 64 NF4 weights is one scale times the published levels (double quantization changes the
    scale, not the levels), so w / max|w| over a block lands on a level."""
    from bench.attacks.quantization import NF4_BLOCK, _decoder_linears, _nf4

    levels = torch.tensor(NF4_LEVELS)
    for name, linear in _decoder_linears(mini_models[1].load()):
        blocks = _nf4(linear).reshape(-1, NF4_BLOCK)
        ratio = blocks / blocks.abs().amax(-1, keepdim=True)
        distance = (ratio.unsqueeze(-1) - levels).abs().amin(-1)
        assert distance.max() < 1e-4, name  # torchao keeps the levels to ~5e-5; the closest two are 0.08 apart


def test_int4_round_to_nearest_is_within_half_a_step(mini_models):
    """Asymmetric int4 per group of 32: 16 levels between each group's min and max, so every weight moves by at
    most (max - min) / 15 / 2 (hand bound, independent of the library's arithmetic)."""
    from bench.attacks.quantization import GROUP, _decoder_linears, _rtn

    model = mini_models[1].load()
    quantize = _rtn(4, False)
    for name, linear in _decoder_linears(model):
        w = linear.weight.detach()
        groups = w.reshape(w.shape[0], -1, GROUP)
        step = (groups.amax(-1) - groups.amin(-1).clamp(max=0).minimum(groups.amin(-1))) / 15
        error = (quantize(linear) - w).reshape_as(groups).abs().amax(-1)
        assert (error <= step / 2 * (1 + 1e-3) + 1e-7).all(), name
        assert not torch.equal(quantize(linear), w)


def test_logit_lens_at_the_last_layer_is_the_models_own_likelihood(mini_data, mini_models, context):
    from bench.attacks.probes import _encoded, layer_readouts
    from bench.metrics.engine import teacher_forced

    tokenizer, target, _ = mini_models
    model = target.load()
    encoded = _encoded(context, "forget")
    readouts = layer_readouts(model, encoded, tokenizer.pad_token_id, 8)
    own = teacher_forced(model, encoded, tokenizer.pad_token_id, 8, moments=False)
    assert len(readouts[0]) == model.config.num_hidden_layers
    for item, scores in zip(readouts, own):
        np.testing.assert_allclose(item[-1][0], scores.logprobs, atol=1e-4)
        assert (item[-1][1] == scores.argmax_match).all()


def test_patching_a_model_into_itself_loses_nothing(mini_models, context):
    from bench.attacks.probes import _encoded, patching_deltas

    tokenizer, target, _ = mini_models
    model = target.load()
    deltas = patching_deltas(model, model, _encoded(context, "forget")[:6], tokenizer.pad_token_id, 4)
    assert deltas.shape == (6, model.config.num_hidden_layers)
    np.testing.assert_allclose(deltas, 0.0, atol=1e-5)


def test_uds_by_hand():
    from bench.attacks.probes import uds

    baseline = np.array([[0.2, 0.01, 0.5], [0.01, 0.02, 0.0]])
    test = np.array([[0.1, 0.3, 1.0], [0.5, 0.5, 0.5]])
    # item 0: FT = {0, 2}; (0.2 * 0.5 + 0.5 * 1) / 0.7; item 1: no layer above tau, no score
    got = uds(baseline, test)
    assert got[0] == pytest.approx(0.6 / 0.7)
    assert np.isnan(got[1])
    assert uds(baseline, baseline)[0] == pytest.approx(1.0)  # the oracle patched like the oracle: full depth
    assert uds(baseline, np.zeros_like(baseline))[0] == 0.0  # loses nothing: the knowledge is intact


def test_attacks_on_the_reference_models(mini_data, mini_models, context):
    """The target keeps its answers under weight attacks and the logit lens; the oracle, which never learned the
    forget people, gains no more than a few items' worth from any of them; UDS is 0 for the target and 1 for the
    oracle by construction; the worst case is the maximum of the plain and attacked values."""
    from bench.attacks.base import attack_metrics
    from bench.metrics.evaluate import SELF, evaluate, shared_draws
    from bench.run.record import metrics_dict

    names = ("quant8", "quant4", "nf4", "logit_lens", "patch")
    out = {}
    for kind, built in zip(("target", "oracle"), mini_models[1:]):
        model = built.load()
        evaluation = evaluate(model, mini_models[0], mini_data, SELF, text=False)
        plain = metrics_dict(evaluation)
        metrics = attack_metrics(model, context, names, plain, shared_draws(evaluation.per_item, evaluation.ids))
        out[kind] = (plain, metrics)
        values = [plain["forget/es"].value, *(metrics[f"forget/es@{n}"].value for n in names if n != "patch")]
        assert metrics["forget/es@worst"].value == pytest.approx(max(values))
        assert len(metrics["forget/es@quant4"].boot) == len(plain["forget/es"].boot)
    target_plain, target = out["target"]
    for name in ("quant8", "quant4", "nf4", "logit_lens"):
        assert target[f"forget/es@{name}"].value >= 0.9 * target_plain["forget/es"].value
    oracle_plain, oracle = out["oracle"]
    for name in ("quant8", "quant4", "nf4", "logit_lens"):
        assert oracle[f"forget/es@{name}"].value <= oracle_plain["forget/es"].value + 0.1
    assert target["forget/uds@patch"].value == pytest.approx(0.0, abs=1e-6)
    assert oracle["forget/uds@patch"].value == pytest.approx(1.0)


def test_prompt_attacks_keep_items_and_order(mini_data, context, mini_models):
    from bench.attacks.prompts import Jailbreak, icl_shots

    scores = Jailbreak().scores(mini_models[1].load(), context)
    assert len(scores["forget"]["es"]) == len(mini_data.eval_splits()["forget"])
    shots = icl_shots(10, 3, "retain")
    assert len(set(shots)) == 3 and 3 not in shots
    assert icl_shots(10, 3, "retain") == shots  # seeded


def test_indirect_questions_reach_each_person_through_their_book(mini_data, context, mini_models):
    """Every forget and retain item has an indirect question that does not name its person and names them through
    their own book title (read off the person's book-title answer, "<name> wrote The <title>."): unique per person,
    so the question has one answer; the attack scores the unchanged answers in item order. The trained target
    answers more of the forget facts this way than the oracle, which never learned them."""
    from bench.attacks.prompts import Indirect

    questions = mini_data.indirect_questions
    for split in ("forget", "retain"):
        ds = mini_data.eval_splits()[split]
        titles = {row["person"]: row["answer"].split(" wrote The ", 1)[1].rstrip(".")
                  for row in (mini_data.forget if split == "forget" else mini_data.retain)
                  if row["attribute"] == "book_title"}
        assert len(set(titles.values())) == len(titles)
        for row in ds:
            question = questions[row["id"]]
            assert row["person"] not in question
            if row["attribute"] != "book_title":
                assert f"the author of The {titles[row['person']]}" in question, question
    target = Indirect().scores(mini_models[1].load(), context)
    oracle = Indirect().scores(mini_models[2].load(), context)
    assert len(target["forget"]["es"]) == len(mini_data.eval_splits()["forget"])
    assert target["forget"]["es"].mean() > oracle["forget"]["es"].mean()


def test_the_indirect_attack_names_a_task_without_indirect_questions(mini_data, context, mini_models):
    import dataclasses

    from bench.attacks.base import AttackContext
    from bench.attacks.prompts import Indirect

    bare = AttackContext(context.tokenizer, dataclasses.replace(mini_data, indirect_questions=None))
    with pytest.raises(ValueError, match="synthetic-mini: the indirect attack needs the task's indirect questions"):
        Indirect().scores(mini_models[1].load(), bare)


def test_board_attack_columns_are_validated(tmp_path: Path):
    from bench.grid.cells import plan
    from bench.specs.board import LeaderboardSpec
    from bench.specs.mapping import SpecError

    path = mini_board(tmp_path, extra="attacks: [quant4]\n")
    path.write_text(path.read_text().replace("columns: [forget/es,", "columns: [forget/es@nf44, forget/es,"))
    with pytest.raises(SpecError, match="did you mean .nf4."):
        plan(LeaderboardSpec.load(path), check_data=False)
    path = mini_board(tmp_path, extra="attacks: [quant5]\n")
    with pytest.raises(SpecError, match=r"attacks\[0\].*quant5"):
        plan(LeaderboardSpec.load(path), check_data=False)


def test_attacks_change_ids_only_of_boards_that_run_them(tmp_path: Path):
    from bench.grid.cells import board_attacks, plan
    from bench.specs.board import LeaderboardSpec

    plain = plan(LeaderboardSpec.load(mini_board(tmp_path / "a")), check_data=False)
    cheap = LeaderboardSpec.load(mini_board(tmp_path / "b", extra="attacks: [cheap]\n"))
    attacked = plan(cheap, check_data=False)
    assert "attacks" not in plain[0].spec.model
    assert set(attacked[0].spec.model["attacks"]) == set(board_attacks(cheap))
    assert "patch" not in board_attacks(cheap) and "quant4" in board_attacks(cheap)
    assert {c.spec.run_id for c in plain}.isdisjoint(c.spec.run_id for c in attacked)


def test_a_board_with_attacks_fills_every_row(tmp_path: Path):
    """One smoke cell with two attacks: the run and both references hold raw and calibrated attack columns."""
    from bench.board.table import build_table
    from bench.grid.cells import plan
    from bench.grid.executor import InProcessExecutor
    from bench.runtime.store import Store
    from bench.specs.board import LeaderboardSpec

    path = mini_board(tmp_path, methods="[{method: ga}]", extra="attacks: [quant4, logit_lens]\n")
    path.write_text(path.read_text().replace("columns: [forget/es,",
                                             "columns: [forget/es@quant4, calibrated/forget/es@worst, forget/es,"))
    board = LeaderboardSpec.load(path)
    store = Store(tmp_path / "results")
    InProcessExecutor().run(plan(board), board, store)
    table = build_table(board, store)
    assert table["forget/es@quant4"].notna().all()
    assert table["calibrated/forget/es@worst"].notna().all()
    assert MINI in table["task"].iloc[0]


def test_the_attack_sentence_names_only_significant_rises():
    """A hand-made board table: A's forget ES rises by 0.1 on every paired draw under quant4, B's by +-0.05 noise
    around 0, the oracle's not at all: only A is named, and the oracle is said not to rise."""
    import pandas as pd

    from bench.board.attack_analysis import attack_sentence

    rng = np.random.default_rng(0)
    plain = {m: rng.normal(0.3, 0.02, 2000) for m in ("A", "B", "retain oracle")}
    attacked = {"A": plain["A"] + 0.1, "B": plain["B"] + rng.normal(0, 0.05, 2000),
                "retain oracle": plain["retain oracle"]}
    rows = pd.DataFrame({"method": ["retain oracle", "A", "B"], "reference": [True, False, False],
                         "forget/es": [0.3, 0.3, 0.3], "forget/es@quant4": [0.3, 0.4, 0.3]})
    rows.attrs["draws"] = {"t": {"forget/es": plain, "forget/es@quant4": attacked}}
    text = attack_sentence(rows, "t", rows, rows[~rows["reference"]])
    assert "under `quant4` for A (0.300 → 0.400) (the retain oracle's does not)" in text
    assert "B (" not in text


def test_perf_reports_every_attack_against_one_evaluation():
    from bench.perf.attacks import attack_cost
    from bench.registry import ATTACKS

    report = attack_cost(MINI, "forget10")
    assert set(report.seconds) == set(ATTACKS.names())
    assert report.evaluation_seconds > 0 and all(s > 0 for s in report.seconds.values())
    assert "x one evaluation" in report.text()


def test_attack_metric_columns_read_their_direction_from_the_attack():
    from bench.grid.columns import column_direction, column_problem

    assert column_problem("forget/uds@patch") is None and column_direction("forget/uds@patch") == "higher"
    assert "measures uds" in column_problem("forget/es@patch")
    assert "forget set only" in column_problem("retain/layer@logit_lens")
    assert column_direction("forget/rouge_l@sample") == "lower"  # a registered metric keeps its own direction
