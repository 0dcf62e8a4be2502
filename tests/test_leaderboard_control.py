"""The control columns of a leaderboard (calibrated metrics, alpha, trade-off AUC), its protocol line and "Finding"
paragraph, and the trade-off plot, on synthetic-mini fixture boards (their records are the committed fixture
records: nothing trains)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.board.findings import finding, protocol_line
from bench.board.markdown import to_markdown
from bench.board.plots import plot_paths
from bench.board.table import build_table
from bench.grid.cells import plan
from bench.grid.columns import column_direction
from bench.release.publish import write_tables
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec
from bench.specs.mapping import SpecError

from .conftest import CONTROL_NONE, FIXTURE_METHODS, MINI, board_records, copy_mini_records, fixture_board

COLUMNS = ("[forget/es, forget_quality, retain/es, calibrated/forget/es, calibrated/forget_quality, "
           "calibrated/model_utility, alpha, tradeoff_auc]")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def control_board(folder: Path, methods: str = FIXTURE_METHODS, columns: str = COLUMNS,
                  sort: str = "{by: calibrated/forget/es, descending: false}", extra: str = "") -> Path:
    """``fixture_board`` (GA, GA+KL, npo) with control columns and a calibrated sort."""
    return fixture_board(folder, methods=methods, columns=columns, sort=sort, extra=extra)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[LeaderboardSpec, Store]:
    """The control board over GA, GA+KL and npo, on a copy of the fixture records."""
    folder = tmp_path_factory.mktemp("control")
    return LeaderboardSpec.load(control_board(folder)), Store(copy_mini_records(folder / "results"))


_records = board_records


# Four small steps barely move the mini model (alpha* = 1, calibrated = raw), so these tests also read copies of
# the records whose control section carries a real calibration: alpha < 1, calibrated metrics that differ from the
# raw ones, and a trade-off curve, in a ranking that the calibration reverses.
CALIBRATION = {"GA": (0.25, 0.0, 0.6), "GA+KL": (0.75, 0.3, 0.2), "npo": (0.5, 0.1, 0.4)}  # alpha, raw ES, cal ES


@pytest.fixture(scope="module")
def calibrated(ran, tmp_path_factory: pytest.TempPathFactory) -> tuple[LeaderboardSpec, Store]:
    board, store = ran
    copy = Store(tmp_path_factory.mktemp("calibrated") / "results")
    shutil.copytree(store.root, copy.root)
    for cell in plan(board):
        alpha, raw_es, cal_es = CALIBRATION[cell.method.display]
        path = copy.folder("runs", cell.spec.run_id) / "result.json"
        record = json.loads(path.read_text())
        record["metrics"]["forget/es"]["value"] = raw_es
        record["metrics"]["retain/es"]["value"] = 1.0 - alpha
        control = record["control"]
        control["calibration"].update(alpha=alpha, u_alpha=0.9, forget_es_alpha=cal_es)
        control["calibrated_metrics"]["forget/es"]["value"] = cal_es
        control["calibrated_metrics"]["model_utility"]["value"] = 0.5 + alpha / 10
        control["tradeoff"] = {"points": [{"alpha": 0.0, "utility": 1.0, "forget_es": 1.0},
                                          {"alpha": alpha, "utility": 0.9, "forget_es": cal_es},
                                          {"alpha": 1.0, "utility": 1.0 - alpha, "forget_es": raw_es}],
                               "auc": alpha / 2}
        path.write_text(json.dumps(record))
    return board, copy


def test_calibrated_columns_and_alpha_equal_the_records(ran) -> None:
    board, store = ran
    table = build_table(board, store)
    records = _records(board, store)
    methods = table[~table["reference"]].set_index("method")
    assert set(methods.index) == {"GA", "GA+KL", "npo"}
    for label, record in records.items():
        row, control = methods.loc[label], record.control
        for key in ("forget/es", "forget_quality", "model_utility"):
            assert row[f"calibrated/{key}"] == pytest.approx(control.calibrated_metrics[key].value, abs=0)
        assert row["forget/es"] == pytest.approx(record.metrics["forget/es"].value, abs=0)
        assert row["alpha"] == pytest.approx(control.calibration.alpha, abs=0)
        assert 0.0 <= row["alpha"] <= 1.0
        assert row["tradeoff_auc"] == pytest.approx(control.tradeoff.auc, abs=0, nan_ok=True)
    calibrated = list(methods["calibrated/forget/es"])
    assert calibrated == sorted(calibrated)  # ascending: forget efficacy at matched utility
    refs = table[table["reference"]]
    assert list(refs["calibrated/forget/es"]) == list(refs["forget/es"])
    assert refs["alpha"].isna().all() and refs["tradeoff_auc"].isna().all()
    markdown = to_markdown(board, table, [])
    for header in ("calibrated/forget/es ↓", "calibrated/forget_quality ↑", "calibrated/model_utility ↑",
                   "alpha ↑", "tradeoff_auc ↑", "forget/es ↓"):
        assert header in markdown
    target_line = next(line for line in markdown.splitlines() if "*target (before unlearning)*" in line)
    cells = [c.strip() for c in target_line.strip("|").split("|")]
    assert cells[-3:-1] == ["", ""]  # alpha and tradeoff_auc are blank on reference rows


def test_calibrated_values_come_from_the_control_section(calibrated) -> None:
    board, store = calibrated
    table = build_table(board, store)
    methods = table[~table["reference"]].set_index("method")
    assert list(methods.index) == ["GA+KL", "npo", "GA"]  # by calibrated/forget/es, ascending
    for label, (alpha, raw_es, cal_es) in CALIBRATION.items():
        row = methods.loc[label]
        assert (row["alpha"], row["forget/es"], row["calibrated/forget/es"]) == (alpha, raw_es, cal_es)
        assert row["calibrated/model_utility"] == pytest.approx(0.5 + alpha / 10)
        assert row["tradeoff_auc"] == alpha / 2
    paragraph = finding(board, table)
    assert "Kendall τ_b = -1.00" in paragraph and "strongly reversed" in paragraph
    # fixture records carry no item draws and one seed each: no difference can be shown significant
    assert ("Raw, GA has the best mean (0.000) but is not significantly better than GA+KL, npo; calibrated, GA+KL has "
            "the best mean (0.200) but is not significantly better than npo, GA.") in paragraph
    assert "No method's rank interval moves clear of its other one." in paragraph
    assert "GA's raw retain ES (`retain/es`) is 0.750 against the target's 1.000 (75% of it), below the " \
           "calibration threshold τ·U(target) = 0.900: its raw `forget/es` of 0.000 is reached by losing retained " \
           "knowledge too; calibrated (α* = 0.250) its `forget/es` is 0.600." in paragraph


def test_column_directions() -> None:
    assert column_direction("calibrated/forget/es") == column_direction("forget/es") == "lower"
    assert column_direction("calibrated/retain/es") == column_direction("retain/es") == "higher"
    assert column_direction("calibrated/forget_quality") == "higher"
    assert column_direction("alpha") == "higher" and column_direction("tradeoff_auc") == "higher"


@pytest.mark.parametrize(("columns", "sort", "expected"), [
    ("[forget/es, calibrated/forget/ess]", "{by: forget/es}",
     "columns[1]: unknown column 'calibrated/forget/ess'; did you mean 'calibrated/forget/es'?"),
    ("[forget/es]", "{by: alpah}", "sort.by: unknown column 'alpah'; did you mean 'alpha'?"),
    ("[calibrated/alpha]", "{by: forget/es}", "columns[0]: alpha has no calibrated form; write alpha"),
    ("[calibrated/es]", "{by: forget/es}", "columns[0]: es is per split; write calibrated/forget/es"),
    ("[forget/prob]", "{by: calibrated/forget/porb}", "sort.by: unknown column 'calibrated/forget/porb'; did you "
                                                      "mean 'calibrated/forget/prob'?"),
])
def test_bad_control_column_is_one_line_spec_error(tmp_path: Path, columns: str, sort: str, expected: str) -> None:
    board = LeaderboardSpec.load(control_board(tmp_path, columns=columns, sort=sort))
    with pytest.raises(SpecError) as info:
        plan(board)
    message = str(info.value)
    assert "\n" not in message and expected in message and str(board.path) in message


def test_unknown_calibrated_column_from_the_cli(tmp_path: Path, env_results: Path, capsys) -> None:
    from bench.cli.main import main

    board = control_board(tmp_path, columns="[forget/es, calibrated/forget/ess]")
    assert main(["run", str(board)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ubench: error: ") and "\n" not in err
    assert "did you mean 'calibrated/forget/es'" in err
    assert not env_results.exists() and not (board.parent / "mini").exists()


@pytest.mark.parametrize("which", ["ran", "calibrated"])
def test_plot_is_a_valid_png_linked_from_the_markdown(which: str, request: pytest.FixtureRequest) -> None:
    import matplotlib.image

    board, store = request.getfixturevalue(which)
    table, paths = write_tables(board, store)
    png = paths["tradeoff"]
    assert png == board.out_dir / "tradeoff.png"
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and b"Software" not in data
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)
    assert np.ptp(image[..., :3]) > 0  # something is drawn
    assert not list(board.out_dir.glob(".tradeoff.png.*"))  # no temporary file left behind
    markdown = paths["markdown"].read_text()
    assert "![trade-off](tradeoff.png)" in markdown
    assert to_markdown(board, table) == markdown  # without a list, it links the plots that exist


def test_markdown_states_the_protocol_and_the_finding(ran) -> None:
    from scipy.stats import kendalltau

    board, store = ran
    table = build_table(board, store)
    markdown = to_markdown(board, table, [])
    protocol = protocol_line(board)
    assert protocol in markdown and "\n" not in protocol
    assert "τ = 0.9" in protocol and "U = retain ES (`retain/es`)" in protocol and "tolerance 0.01" in protocol
    paragraph = finding(board, table)
    assert paragraph.startswith("**Finding.**") and paragraph in markdown
    methods = table[~table["reference"]]
    tau = kendalltau(methods["forget/es"], methods["calibrated/forget/es"]).statistic
    if math.isfinite(tau):
        assert f"Kendall τ_b = {tau:.2f}" in paragraph
    else:
        assert "Kendall τ_b is undefined" in paragraph
    ga = methods[methods["method"] == "GA"].iloc[0]
    target = table[table["method"] == "target (before unlearning)"].iloc[0]
    assert f"GA's raw retain ES (`retain/es`) is {ga['retain/es']:.3f} against the target's " \
           f"{target['retain/es']:.3f}" in paragraph
    assert f"α* = {ga['alpha']:.3f}" in paragraph


@pytest.mark.parametrize("which", ["ran", "calibrated"])
def test_tables_and_plot_are_deterministic(which: str, request: pytest.FixtureRequest) -> None:
    board, store = request.getfixturevalue(which)
    first, paths = write_tables(board, store)
    markdown, csv, png = (paths[k].read_bytes() for k in ("markdown", "csv", "tradeoff"))
    second, again = write_tables(board, store)
    assert second.equals(first)
    assert again["markdown"].read_bytes() == markdown and again["csv"].read_bytes() == csv
    assert again["tradeoff"].read_bytes() == png


def test_finding_is_computed_from_the_table(tmp_path: Path) -> None:
    """A hand-made table: the ranks, Kendall tau-b and GA's utility come from its numbers, not from constants."""
    from scipy.stats import kendalltau

    board = LeaderboardSpec.load(control_board(tmp_path, methods="[{method: ga, label: GA}, {method: gd}, "
                                                                 "{method: npo}, {method: simnpo}]"))
    task = f"{MINI}/forget10"
    rows = [("target (before unlearning)", True, 1.0, 1.0, 1.0, np.nan),
            ("retain oracle", True, 0.2, 0.2, 1.0, np.nan),
            ("GA", False, 0.0, 0.6, 0.05, 0.3),
            ("gd", False, 0.3, 0.3, 0.9, 0.9),
            ("npo", False, 0.1, 0.5, 0.4, 0.5),
            ("simnpo", False, 0.2, 0.4, 0.7, 0.6)]
    table = pd.DataFrame([{"task": task, "method": m, "reference": ref, "forget/es": raw,
                           "calibrated/forget/es": cal, "retain/es": u, "alpha": a} for m, ref, raw, cal, u, a in rows])
    paragraph = finding(board, table)
    tau = kendalltau([0.0, 0.3, 0.1, 0.2], [0.6, 0.3, 0.5, 0.4]).statistic
    assert tau == pytest.approx(-1.0)
    assert "Kendall τ_b = -1.00" in paragraph and "strongly reversed" in paragraph
    assert ("Raw, the best is GA at 0.000 (no uncertainty stored: not tested); calibrated, the best is gd at 0.300 "
            "(no uncertainty stored: not tested).") in paragraph
    assert "Largest moves of the point ranks" in paragraph and "GA 1 → 4; gd 4 → 1" in paragraph
    assert "GA's raw retain ES (`retain/es`) is 0.050 against the target's 1.000 (5% of it), below the " \
           "calibration threshold τ·U(target) = 0.900" in paragraph
    assert "calibrated (α* = 0.300) its `forget/es` is 0.600" in paragraph
    without = finding(board, table.drop(columns=["calibrated/forget/es"]))
    assert "Add `forget/es` and `calibrated/forget/es` to the columns" in without


def test_robustness_paragraph_is_computed_from_the_table(tmp_path: Path) -> None:
    """Relearning: methods more than 0.1 above the oracle's relearned ES are named, the most recovered first;
    lm-eval: methods below tau times the target's accuracy are named; no columns, no paragraph."""
    from bench.board.analysis import robustness_paragraph

    board = LeaderboardSpec.load(control_board(tmp_path, methods="[{method: ga, label: GA}, {method: gd}, "
                                                                 "{method: npo}]"))
    task = f"{MINI}/forget10"
    rows = [("target (before unlearning)", True, 0.9, 1.0, 1.0), ("retain oracle", True, 0.2, 0.15, 1.0),
            ("GA", False, 0.6, 0.05, 0.4), ("gd", False, 0.25, 0.2, 0.95), ("npo", False, 0.45, 0.2, 0.85),
            ("idk", False, 0.95, 0.9, 1.0)]
    table = pd.DataFrame([{"task": task, "method": m, "reference": ref, "relearn/forget/es": r,
                           "relearn/forget/es_before": b, "lm_eval/synthetic_world_mc/acc": acc}
                          for m, ref, r, b, acc in rows])
    paragraph = robustness_paragraph(board, table)
    assert "the retain oracle reaches `relearn/forget/es` = 0.200 on the other items (0.150 before)" in paragraph
    # idk never forgot (0.9 before): not counted; GA and npo forgot and recover beyond oracle + 0.1; gd does not
    assert "Of the 3 methods that had forgotten them (ES before at most 0.1 above the oracle's), 2 recover " \
           "significantly more than 0.1 above" in paragraph
    assert "(most: GA, 0.050 → 0.600)" in paragraph and "less robust than that: gd." in paragraph
    assert "the target scores 1.000; 2 of 4 raw endpoints fall significantly below τ times that (0.900" in paragraph
    assert "GA, npo." in paragraph
    assert robustness_paragraph(board, table.drop(columns=["relearn/forget/es", "relearn/forget/es_before",
                                                           "lm_eval/synthetic_world_mc/acc"])) == ""


def test_one_plot_per_task_on_a_multi_task_board(tmp_path: Path) -> None:
    path = control_board(tmp_path)
    path.write_text(path.read_text().replace(f"tasks: [{{task: {MINI}, split: forget10}}]",
                                             f"tasks: [{{task: {MINI}, split: forget10}}, "
                                             "{task: synthetic, split: forget05}]"))
    board = LeaderboardSpec.load(path)
    names = [p.name for p in plot_paths(board, board.out_dir / "tradeoff.png").values()]
    assert names == [f"tradeoff-{MINI}-forget10.png", "tradeoff-synthetic-forget05.png"]


def test_control_none_has_blank_calibrated_columns_and_no_plot(tmp_path: Path, mini_results: Path) -> None:
    board = LeaderboardSpec.load(control_board(tmp_path, methods="[{method: ga, label: GA}]", extra=CONTROL_NONE))
    cells = plan(board)
    assert cells[0].spec.control.kind == "none"  # the board's control reaches the run spec
    store = Store(mini_results)
    assert store.load_run(cells[0].spec.run_id).control.spec["kind"] == "none"
    table, paths = write_tables(board, store)
    row = table[~table["reference"]].iloc[0]
    assert row["status"] == "ok"
    assert np.isnan(row["calibrated/forget/es"]) and np.isnan(row["alpha"]) and not np.isnan(row["forget/es"])
    assert "tradeoff" not in paths and not (board.out_dir / "tradeoff.png").exists()
    markdown = paths["markdown"].read_text()
    assert "Control: none" in markdown and "![trade-off]" not in markdown and "**Finding.**" in markdown


def test_extra_tables_render_under_the_main_table(ran, tmp_path: Path) -> None:
    """``tables:`` adds titled tables with the same rows; their columns are in the CSV; the one-seed cells carry the
    bootstrap interval; reference rows show lm-eval utility and the relearning attack (external evaluations)."""
    board, store = ran
    extra = ("tables: {Privacy and utility: [privleak_loss, forget/knowmem, forget_bio/verbmem, "
             "lm_eval/synthetic_world_mc/acc, relearn/forget/es]}")
    path = control_board(tmp_path, extra=extra)
    spec = LeaderboardSpec.load(path)
    assert spec.all_columns[-5:] == ("privleak_loss", "forget/knowmem", "forget_bio/verbmem",
                                     "lm_eval/synthetic_world_mc/acc", "relearn/forget/es")
    table = build_table(spec, store)
    markdown = to_markdown(spec, table, plots=[], geffect_plots=[])
    section = markdown.split("## Privacy and utility", 1)[1]
    assert "lm_eval/synthetic_world_mc/acc ↑" in section and "relearn/forget/es ↓" in section
    target = table[table["method"] == "target (before unlearning)"].iloc[0]
    oracle = table[table["method"] == "retain oracle"].iloc[0]
    assert target["lm_eval/synthetic_world_mc/acc"] >= 0.9  # the target memorised the world facts
    assert target["forget_bio/verbmem"] > 0.9 > oracle["forget_bio/verbmem"]
    assert oracle["relearn/forget/es"] < target["relearn/forget/es"]
    # a one-seed cell shows its interval: "value [low, high]"
    assert re.search(r"\| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", section)


@pytest.mark.parametrize("extra, expected", [
    ("tables: {X: [forget_bio/truth_ratio]}", "tables.X[0]: truth_ratio is not defined on forget_bio"),
    ("tables: {X: [calibrated/lm_eval/synthetic_world_mc/acc]}", "has no calibrated form"),
    ("tables: {X: [relearn/es]}", "write relearn/forget/es or relearn/forget/prob"),
])
def test_bad_table_column_is_one_line_spec_error(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(SpecError, match=re.escape(expected)):
        plan(LeaderboardSpec.load(control_board(tmp_path, extra=extra)))
