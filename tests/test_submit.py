"""``ubench submit`` and ``ubench new-method``: an outside method is checked (budget, label, registration,
documentation, hyper-parameters within the search space, then two deterministic smoke runs) and only then written
into the board's entries folder; the installed-package path is tested end to end with a real ``pip install``.

Each ``validate_and_submit`` starts a sandboxed subprocess and, when every cheap check passed, two smoke runs: the
budget, label and hyper-parameter rules are tested on their check functions, fail-fast on the worker in process
with the smoke run counted, and whole submissions where the subprocess, the report or the smoke run is what is
tested."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.cli.main import main
from bench.registry import METHODS
from bench.runtime.paths import REPO_ROOT
from bench.specs.board import LeaderboardSpec, label_slug
from bench.specs.mapping import SpecError
from bench.submit import sandbox
from bench.submit.checks import check_params, load_method
from bench.submit.entry import SubmissionEntry, SubmissionReport
from bench.submit.validate import check_budget, check_label, validate_and_submit

from .conftest import MINI, PLUGINS, mini_board

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIXTURE_PACKAGE = Path(__file__).parent / "fixtures" / "ubench_example_plugin"
MINI_BUDGET = "budget: {steps: 4, lr: 0.0005, batch_size: 8}"


def tier_board(folder: Path, tier: str = "smoke", methods: str = "[{method: ga, label: GA}]") -> Path:
    """The conftest mini board over ``synthetic-mini`` with its budget replaced by the named ``tier``."""
    path = mini_board(folder, methods=methods)
    text = path.read_text()
    assert MINI_BUDGET in text, "conftest.mini_board changed its budget line"
    path.write_text(text.replace(MINI_BUDGET, f"budget: {tier}"))
    return path


def write_entry(folder: Path, body: str, name: str = "entry.yaml") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def entry_yaml(method: str = "ga", label: str = "GA cap", params: str = "{cap: 0.5}", tier: str = "smoke",
               extra: str = "") -> str:
    return f"""method: {method}
version: "1"
label: {label}
paper: "Jang et al. 2023, Knowledge Unlearning (arXiv 2210.01504)"
authors: [A. Researcher]
params: {params}
tier: {tier}
{extra}"""


def submit(entry: Path, board: Path, plugin: Path | None = None, workdir: Path | None = None) -> SubmissionReport:
    return validate_and_submit(entry, board, MINI, plugin, workdir=workdir)


def line(report: SubmissionReport, check: str) -> str:
    """The report's line for ``check`` (exactly one, one line)."""
    found = [x for x in report.lines if x.split(" ", 1)[-1].startswith(f"{check}:") or x.endswith(f" {check}")]
    assert len(found) == 1, report.text
    return found[0]


def assert_failed_and_nothing_written(report: SubmissionReport, board: Path) -> None:
    assert not report.ok and report.written is None, report.text
    assert report.lines[-1] == "submission FAILED"
    entries = LeaderboardSpec.load(board).entries_dir
    assert not entries.exists() or not any(entries.iterdir())


# --- failures: one FAIL line each, nothing written -------------------------------------------------------------


def test_missing_required_field_is_one_spec_error_line(tmp_path: Path, capsys) -> None:
    board = tier_board(tmp_path)
    entry = write_entry(tmp_path, entry_yaml().replace("authors: [A. Researcher]\n", ""))
    with pytest.raises(SpecError, match="^" + re.escape(f"{entry}: authors: missing required field") + "$"):
        submit(entry, board)
    entry.write_text(entry_yaml(extra="papr: x\n"))
    assert main(["submit", str(entry), "--board", str(board), "--task", MINI]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ubench: error: {entry}: papr: unknown field; did you mean 'paper'?"
    entry.write_text(entry_yaml().replace("authors: [A. Researcher]", "authors: []"))
    with pytest.raises(SpecError, match="authors: list at least one author"):
        submit(entry, board)
    assert not (board.parent / "mini").exists()


def test_unknown_method_suggests_a_name(tmp_path: Path) -> None:
    board = tier_board(tmp_path)
    report = submit(write_entry(tmp_path, entry_yaml(method="nop", params="{}")), board)
    assert "FAIL method: unknown method 'nop'; did you mean 'npo'" in line(report, "method")
    assert line(report, "smoke run").startswith("SKIP smoke run")
    assert_failed_and_nothing_written(report, board)


def _params_check(tmp_path: Path, method: str, params: str, label: str = "x") -> tuple[object, list[str]]:
    """``check_params`` (what the sandbox runs for ``hyper-parameters``) on an entry of ``method`` with ``params``."""
    entry = SubmissionEntry.load(write_entry(tmp_path, entry_yaml(method, label, params=params)))
    cls, _ = load_method(method, None)
    return check_params(cls, entry, "entry")


def test_param_outside_the_search_space(tmp_path: Path) -> None:
    instance, problems = _params_check(tmp_path, "ga", "{cap: 0.1}")
    assert problems == ["params.cap: 0.1 is outside the search space [0.25, 1.0]"]
    assert instance is not None  # it builds: the smoke run still runs, so one submission reports every problem
    assert load_method("ga", None)[1].startswith("built in (bench.methods.")
    assert _params_check(tmp_path, "ga", "{cap: 0.25}")[1] == []  # the bound itself is inside


def test_param_outside_the_search_space_must_keep_its_default(tmp_path: Path) -> None:
    _, problems = _params_check(tmp_path, "rmu", "{trainable: 'layers'}")
    assert len(problems) == 1 and problems[0].startswith("params.trainable: 'layers' differs from the default")
    assert "fixed by the method's version" in problems[0]


def test_listed_choices_of_a_non_numeric_field(tmp_path: Path) -> None:
    """retain_loss is searched over its listed choices: GA may add the KL regulariser; GD may not drop its own."""
    assert _params_check(tmp_path, "ga", "{retain_loss: kl}")[1] == []
    instance, problems = _params_check(tmp_path, "gd", "{retain_loss: none}")
    assert instance is None  # it does not build: the smoke run is skipped
    assert problems == ["entry: params.retain_loss: gd needs a retain term (nll or kl); use ga for plain ascent"]


def test_invalid_param_value_is_a_fail_line(tmp_path: Path) -> None:
    board = tier_board(tmp_path)
    report = submit(write_entry(tmp_path, entry_yaml(params="{cap: 2.0, cpa: 1}")), board)
    assert "params.cpa: unknown field; did you mean 'cap'?" in line(report, "hyper-parameters")
    assert line(report, "smoke run") == "SKIP smoke run: the method could not be built"
    assert_failed_and_nothing_written(report, board)


def test_budget_check_of_a_named_tier(tmp_path: Path) -> None:
    board = LeaderboardSpec.load(tier_board(tmp_path, tier="smoke"))

    def tier_of(tier: str) -> tuple[str, str]:
        return check_budget(SubmissionEntry.load(write_entry(tmp_path, entry_yaml(tier=tier))), board)

    assert tier_of("smoke") == ("PASS", "tier smoke: 3 steps, lr 0.0002, batch 4 x 1, constant schedule, 4 forward "
                                        "passes per micro-batch")
    assert tier_of("standard") == ("FAIL", "the entry targets tier 'standard' but board mini runs tier 'smoke'")
    assert tier_of("huge") == ("FAIL", "unknown budget tier 'huge' (known: smoke, smoke-search, mini, standard, full)")
    custom = SubmissionEntry.load(write_entry(tmp_path, entry_yaml(tier="x").replace("tier: x", MINI_BUDGET)))
    assert check_budget(custom, board) == ("FAIL", "board mini runs tier 'smoke', not a custom budget; write "
                                                   "tier: smoke instead of budget")


def test_budget_check_of_a_custom_budget(tmp_path: Path) -> None:
    """A board whose ``budget`` is a mapping takes an entry that gives the same mapping (read like a tier: the
    same fields, checks and one-line errors); an entry naming a tier is told the mapping to write."""
    custom = LeaderboardSpec.load(mini_board(tmp_path / "custom"))

    def budget_of(budget: str) -> tuple[str, str]:
        text = entry_yaml().replace("tier: smoke", budget)
        return check_budget(SubmissionEntry.load(write_entry(tmp_path, text)), custom)

    assert budget_of("budget: {steps: 4, lr: 5.0e-4, batch_size: 8}") == (
        "PASS", "custom budget: 4 steps, lr 0.0005, batch 8 x 1, constant schedule, 4 forward passes per micro-batch")
    assert budget_of("budget: {steps: 5, lr: 0.0005, batch_size: 8}") == (
        "FAIL", "the entry's budget differs from board mini's: steps 5 != 4")
    assert budget_of("tier: smoke") == ("FAIL", "board mini runs a custom budget, not tier 'smoke'; give it in the "
                                                "entry instead of tier: budget: {steps: 4, lr: 0.0005, batch_size: 8}")
    for text, error in (("budget: {stpes: 4}", "budget.stpes: unknown field; did you mean 'steps'?"),
                        ("budget: {steps: 0}", "budget.steps: must be >= 1, got 0"),
                        ("budget: {steps: 4, tier: smoke}", "budget.tier: a custom budget has no tier name"),
                        ("tier: smoke\nbudget: {steps: 4}", "tier: give exactly one of tier"),
                        ("", "tier: give exactly one of tier")):
        path = write_entry(tmp_path, entry_yaml().replace("tier: smoke", text))
        with pytest.raises(SpecError, match="^" + re.escape(f"{path}: {error}")):
            SubmissionEntry.load(path)


def test_duplicate_label(tmp_path: Path) -> None:
    board = LeaderboardSpec.load(tier_board(tmp_path, methods="[{method: ga, label: GA}, {method: gd}]"))

    def label_of(label: str) -> tuple[str, str]:
        entry = SubmissionEntry.load(write_entry(tmp_path, entry_yaml(label=label)))
        return check_label(entry, board, board.entries_dir / f"{label_slug(label)}.yaml", None)

    assert label_of("GA") == ("FAIL", "'GA' is already on board mini; choose another label")
    assert label_of("gd") == ("FAIL", "'gd' is already on board mini; choose another label")
    assert label_of("GA cap") == ("PASS", "'GA cap' is new on board mini")
    board.entries_dir.mkdir(parents=True)
    (board.entries_dir / "ga-cap.yaml").write_text("method: ga\n")  # a submitted entry with the same file name
    status, detail = label_of("GA  cap")
    assert status == "FAIL" and detail.startswith(f"{board.entries_dir / 'ga-cap.yaml'} already exists")


NAN_DOCUMENTED = '''"""A documented method whose loss is NaN: it passes every cheap check and fails its smoke run."""

from bench.methods.base import Method, sequence_nll
from bench.registry import METHODS


@METHODS.register("nan_documented")
class NaNDocumented(Method):
    """L = NaN * NLL: every step's loss is NaN."""

    paper = "none (a test method)"

    def loss(self, model, batch, ctx):
        return sequence_nll(model, batch.forget).mean() * float("nan"), {}
'''


def test_a_nan_plugin_fails_its_first_smoke_run_with_the_step_and_stops(tmp_path: Path) -> None:
    board = tier_board(tmp_path)
    plugin = tmp_path / "nan_documented.py"
    plugin.write_text(NAN_DOCUMENTED)
    entry = write_entry(tmp_path, entry_yaml(method="nan_documented", label="NaN", params="{}"))
    report = submit(entry, board, plugin=plugin, workdir=tmp_path / "work")
    assert line(report, "method") == f"PASS method: 'nan_documented' from plug-in file {plugin}"
    smoke = line(report, "smoke run")
    assert smoke.startswith("FAIL smoke run: run 1 on synthetic-mini/forget10, tier smoke (3 steps), seed 0 "
                            "failed (step 1): NonFiniteLoss: non-finite loss nan at step 1"), smoke
    assert (tmp_path / "work" / "run1").is_dir() and not (tmp_path / "work" / "run2").exists()  # no second run
    assert_failed_and_nothing_written(report, board)


def test_a_failing_cheap_check_fails_fast_with_no_smoke_run(tmp_path: Path) -> None:
    """Issue 18: a submission whose cheap checks fail (here the budget tier and the documentation) said FAILED only
    after both smoke runs; now every cheap check reports and no smoke run starts (its store folder stays absent)."""
    board = tier_board(tmp_path)
    entry = write_entry(tmp_path, entry_yaml(method="nan_loss", label="NaN", params="{}", tier="standard"))
    start = time.perf_counter()
    report = submit(entry, board, plugin=PLUGINS / "nan_method.py", workdir=tmp_path / "work")
    seconds = time.perf_counter() - start
    assert line(report, "budget").startswith("FAIL budget: the entry targets tier 'standard'")
    assert line(report, "label").startswith("PASS label")
    assert line(report, "method") == f"PASS method: 'nan_loss' from plug-in file {PLUGINS / 'nan_method.py'}"
    assert "no 'paper' attribute" in line(report, "documentation")
    assert line(report, "smoke run").startswith("SKIP smoke run: not run: an earlier check failed")
    assert not (tmp_path / "work" / "run1").exists()
    assert_failed_and_nothing_written(report, board)
    # two process starts and their imports only (15-45 s on a busy 2-core machine; the smoke runs took 143 s on the
    # embedded task): a sanity bound, the absent store above is what shows that no run started
    assert seconds < 90, seconds


def _worker(tmp_path: Path, entry_text: str, plugin: Path | None, smoke: bool, monkeypatch, capsys
            ) -> tuple[list[list[str]], int]:
    """``worker_main`` in this process on an entry, with ``smoke_run`` counted instead of run: (the report lines as
    [status, check, detail], the number of smoke_run calls)."""
    calls = []
    monkeypatch.setattr(sandbox, "smoke_run", lambda *args: calls.append(args) or (True, "counted"))
    # as in the sandbox's fresh process: the plug-in's method is not registered yet (another test in this process
    # may have registered it from a copy of the file, which the method check would rightly refuse)
    from bench import registry
    from bench.registry import METHODS

    if plugin is not None:
        for name in ("nan_loss",):
            if name in METHODS._entries:
                monkeypatch.delitem(METHODS._entries, name)
        for module, file in list(registry._PLUGIN_FILES.items()):
            if file == plugin.resolve():
                monkeypatch.delitem(registry._PLUGIN_FILES, module)
    entry = SubmissionEntry.load(write_entry(tmp_path, entry_text))
    job = {"entry": dataclasses.asdict(entry), "plugin": str(plugin) if plugin else None, "task": MINI,
           "folder": str(tmp_path / "work"), "memory_limit": 0, "source": "entry", "smoke": smoke}
    capsys.readouterr()
    assert sandbox.worker_main([json.dumps(job)]) == 0
    lines = [json.loads(x.split(" ", 1)[1]) for x in capsys.readouterr().out.splitlines()
             if x.startswith("@@ubench-submit ")]
    return lines, len(calls)


def test_the_worker_starts_the_smoke_runs_only_when_every_cheap_check_passed(tmp_path: Path, monkeypatch,
                                                                                 capsys) -> None:
    undocumented = entry_yaml(method="nan_loss", label="NaN", params="{}")
    lines, calls = _worker(tmp_path, undocumented, PLUGINS / "nan_method.py", True, monkeypatch, capsys)
    assert [x[:2] for x in lines] == [["PASS", "method"], ["FAIL", "documentation"], ["PASS", "hyper-parameters"],
                                      ["SKIP", "smoke run"]] and calls == 0
    outside = entry_yaml(params="{cap: 0.1}")  # builds, but outside the search space
    lines, calls = _worker(tmp_path, outside, None, True, monkeypatch, capsys)
    assert lines[2][:2] == ["FAIL", "hyper-parameters"] and lines[3][:2] == ["SKIP", "smoke run"] and calls == 0
    good = entry_yaml()
    lines, calls = _worker(tmp_path, good, None, False, monkeypatch, capsys)  # the caller's budget or label failed
    assert lines[3] == ["SKIP", "smoke run", "not run: an earlier check failed (the smoke runs start only when "
                                             "every cheap check passed)"] and calls == 0
    lines, calls = _worker(tmp_path, good, None, True, monkeypatch, capsys)
    assert lines[3] == ["PASS", "smoke run", "counted"] and calls == 1


def test_missing_plugin_file_is_a_fail_line(tmp_path: Path) -> None:
    board = tier_board(tmp_path)
    report = submit(write_entry(tmp_path, entry_yaml(method="mine", params="{}", extra="plugin: mine.py\n")), board)
    assert line(report, "method") == f"FAIL method: {tmp_path / 'mine.py'}: plug-in file not found"
    assert_failed_and_nothing_written(report, board)


def test_label_slug() -> None:
    assert label_slug("GA+KL") == "ga-kl"
    assert label_slug("ExampleGA (tau 0.25)") == "examplega-tau-0.25"
    assert label_slug("++") == "entry"


# --- new-method: the generated pair passes submit --------------------------------------------------------------


def test_template_registers_nothing_when_imported() -> None:
    import bench.submit.templates.method_template as template

    assert "template_method" not in METHODS
    assert template.TemplateMethod.__doc__ and template.TemplateMethod.paper


def test_new_method_passes_submit_and_lands_in_the_entries_folder(tmp_path: Path, capsys) -> None:
    work = tmp_path / "work"
    assert main(["new-method", "submit_test_method", "--dir", str(work)]) == 0
    code, entry = work / "submit_test_method.py", work / "submit_test_method.entry.yaml"
    assert f"wrote {code} and {entry}" in capsys.readouterr().out
    before = code.read_text()
    assert '@METHODS.register("submit_test_method")' in before and "class SubmitTestMethod(Method)" in before
    assert main(["new-method", "submit_test_method", "--dir", str(work)]) == 2  # never overwrites
    assert "already exists; refusing to overwrite" in capsys.readouterr().err
    assert code.read_text() == before

    board = mini_board(tmp_path)  # a custom budget: the entry gives it instead of a tier
    text = entry.read_text()
    assert "\ntier: standard\n" in text
    entry.write_text(text.replace("\ntier: standard\n", "\nbudget: {steps: 4, lr: 0.0005, batch_size: 8}\n"))
    assert main(["submit", str(entry), "--board", str(board), "--task", MINI]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "submission PASSED", out
    checks = [x.split(":")[0] for x in out if x.startswith(("PASS", "FAIL", "SKIP"))]
    assert checks == ["PASS budget", "PASS label", "PASS method", "PASS documentation", "PASS hyper-parameters",
                      "PASS smoke run"]
    assert ("PASS budget: custom budget: 4 steps, lr 0.0005, batch 8 x 1, constant schedule, 4 forward passes per "
            "micro-batch") in out
    assert "identical records" in out[-3] and " s)" in out[-3]

    spec = LeaderboardSpec.load(board)
    written = spec.entries_dir / "submit_test_method.yaml"
    copy = spec.entries_dir / "submit_test_method.py"
    assert written.exists() and copy.read_text() == before
    added = spec.methods[-1]
    assert (added.method, added.label, added.params, added.plugin) == (
        "submit_test_method", "submit_test_method", {"alpha": 1.0}, str(copy.resolve()))
    assert "submitted:" in written.read_text()
    stored = yaml.safe_load(written.read_text())  # the budget the board runs, in full
    assert "tier" not in stored and stored["budget"] == {
        "steps": 4, "lr": 0.0005, "batch_size": 8, "grad_accum": 1, "warmup_steps": 0, "weight_decay": 0.0,
        "max_grad_norm": 0.0, "callback_every": 0, "schedule": "constant", "forward_passes_per_step": 4}
    assert SubmissionEntry.load(written).budget == spec.budget

    # the same label again fails: the written entry is on the board now
    again = LeaderboardSpec.load(board)
    status, detail = check_label(SubmissionEntry.load(entry), again, written, None)
    assert status == "FAIL" and "'submit_test_method' is already on board mini" in detail
    assert sorted(p.name for p in spec.entries_dir.iterdir()) == ["submit_test_method.py", "submit_test_method.yaml"]

    # a fresh process plans the board from the copied plug-in alone (the generated files can go away)
    shutil.rmtree(work)
    shown = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                            str(board)], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "submit_test_method" in shown.stdout, shown.stdout


# --- an installed package's entry point, end to end in subprocesses ---------------------------------------------


def _ubench() -> Path:
    for candidate in (Path(sys.executable).with_name("ubench"), REPO_ROOT / ".venv" / "bin" / "ubench"):
        if candidate.exists():
            return candidate
    pytest.skip("the ubench console script is not installed")


def test_installed_package_entry_point_submit_and_run(tmp_path: Path) -> None:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not importable in this environment (needed to build the example package)")
    package = tmp_path / "ubench_example_plugin"  # build from a copy: setuptools writes build/ and egg-info in place
    shutil.copytree(FIXTURE_PACKAGE, package, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "--target", str(site), str(package)], check=True, cwd=tmp_path,
                   capture_output=True, text=True, timeout=300)
    # the checkout under test first: the console script would otherwise import the editable install's `bench`
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO_ROOT), str(site))), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "UBENCH_RESULTS": str(tmp_path / "results")}
    ubench = str(_ubench())

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ubench, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    board = tier_board(tmp_path, tier="smoke", methods="[{method: ga}]")
    submitted = run("submit", str(package / "entry.yaml"), "--board", str(board), "--task", MINI)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "PASS method: 'example_ga' from entry point example_ga = ubench_example_plugin.method:ExampleGA of " \
           "installed package ubench-example-plugin 0.1.0" in submitted.stdout
    assert submitted.stdout.strip().splitlines()[-1] == "submission PASSED"
    entries = board.parent / "mini" / "entries"
    assert [p.name for p in entries.iterdir()] == ["examplega-tau-0.25.yaml"]

    # the board's next run includes the entry (only its cell here: GA's is another test's business)
    ran = run("run", str(board), "-k", "ExampleGA", "--jobs", "1")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "ExampleGA (tau 0.25)/seed0: ok" in ran.stdout
    table = (tmp_path / "results" / "boards" / "mini" / "board.md").read_text()
    row = next(x for x in table.splitlines() if "ExampleGA (tau 0.25)" in x)
    assert "1/1" in row and row.rstrip(" |").endswith("ok")

    # the record names the package and its version, and carries the entry's citation; ubench cite prints it
    (record,) = (tmp_path / "results" / "runs").glob("*/result.json")  # only ExampleGA's cell ran
    fixture = yaml.safe_load((package / "entry.yaml").read_text())
    assert json.loads(record.read_text())["origin"] == {
        "version": "1", "package": "ubench-example-plugin", "package_version": "0.1.0",
        "entry": "examplega-tau-0.25.yaml", "paper": fixture["paper"], "authors": fixture["authors"],
        "citation": fixture["citation"].strip()}
    cited = run("cite", str(board))
    assert cited.returncode == 0, cited.stdout + cited.stderr
    assert ("% method example_ga as 'ExampleGA (tau 0.25)': version 1; package ubench-example-plugin 0.1.0; "
            f"paper: {fixture['paper']}; authors: Ada Example, Alan Sample") in cited.stdout
    assert fixture["citation"].strip() in cited.stdout and "example_ga: no BibTeX entry" not in cited.stdout
