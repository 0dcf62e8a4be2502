"""Tables built from a store that lacks a board's records never replace the committed tables.

A pytest session that runs no item of a board (``--collect-only``, ``-k`` deselecting everything, a collection
error) writes nothing; ``ubench board`` on a store without any of the board's records is exit 2 naming the store,
with nothing written; a store missing some cells writes to ``<store>/boards/<name>/`` and says so; only a store
holding every cell rewrites (and prunes) the board's own folder. The shared text of a board (its release line)
holds no absolute local path.

The boards here are copies of the committed default board (spec and tables, G-effect plots and releases included)
in a temporary ``leaderboards/`` folder; the records come from the committed release bundle, so nothing trains.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bench.cli.main import main

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "leaderboards" / "synthetic.yaml"
COMMITTED = REPO / "leaderboards" / "synthetic"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _copy_board(root: Path, methods: list[str] | None = None) -> Path:
    """``root/leaderboards/synthetic.yaml`` (the committed spec; with ``methods``, only the entries with those
    labels) and ``root/leaderboards/synthetic/``, a copy of the committed tables, plots and releases."""
    folder = root / "leaderboards"
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "synthetic.yaml"
    if methods is None:
        shutil.copyfile(SPEC, spec)
    else:
        data = yaml.safe_load(SPEC.read_text())
        data["methods"] = [m for m in data["methods"] if m.get("label") in methods]
        assert len(data["methods"]) == len(methods)
        spec.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copytree(COMMITTED, folder / "synthetic")
    return spec


@pytest.fixture(scope="module")
def bundle() -> dict[str, bytes]:
    """The files of the newest committed release of the default board (its records among them)."""
    from bench.release.bundle import BUNDLE, read_bundle, read_manifests
    from bench.release.snapshot import releases_dir
    from bench.specs.board import LeaderboardSpec

    board = LeaderboardSpec.load(SPEC)
    manifests = read_manifests(board)  # oldest first: by creation, so 10 comes after 9
    if not manifests:
        pytest.skip("the synthetic board has no committed release to take records from")
    return read_bundle(releases_dir(board) / manifests[-1]["version"] / BUNDLE)


def _store_from_release(bundle: dict[str, bytes], root: Path, labels: list[str]) -> Path:
    """A result store at ``root`` with the release's reference records and the run records of the cells of the
    entries labelled ``labels`` (as stored: ``result.json`` from the provenance, the other files as bundled),
    re-keyed by ``ubench store migrate`` where the release predates the versions in the ids."""
    from bench.grid.cells import plan
    from bench.run.migrate import migrate_store
    from bench.runtime.store import Store
    from bench.specs.board import LeaderboardSpec

    board = LeaderboardSpec.load(SPEC)
    keep = {c.spec.run_id for c in plan(board) if c.method.display in labels}
    staging = root.parent / f"{root.name}-release"
    for path, data in bundle.items():
        parts = path.split("/")
        if parts[0] == "records" and parts[3] != "result.json":
            kind, record_id, name = parts[1:4]
        elif parts[0] == "provenance" and parts[1] == "records":
            kind, record_id, name = parts[2:5]
        else:
            continue
        if kind != "searches":
            target = staging / kind / record_id / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    migrate_store(Store(staging))
    for folder in (staging / "refs").iterdir():
        shutil.copytree(folder, root / "refs" / folder.name)
    for record_id in keep & {p.name for p in (staging / "runs").iterdir()}:
        shutil.copytree(staging / "runs" / record_id, root / "runs" / record_id)
    assert len(list((root / "runs").glob("*/result.json"))) == len(keep) > 0
    return root


def _seeds(markdown: str) -> dict[str, str]:
    """The seeds cell of each method row of the board's main table."""
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in markdown.split("\n\n## ")[0].splitlines()
            if line.startswith("| synthetic/")]
    # reference rows are in italics (*target*); methods tied with the best in bold (**GA**)
    return {row[1].strip("*"): row[2] for row in rows if row[1].startswith("**") or not row[1].startswith("*")}


def _pytest(root: Path, results: Path, *args: str, monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str]:
    """``pytest ARGS`` in this process, run from ``root``: (exit code, its output)."""
    monkeypatch.chdir(root)
    capsys.readouterr()
    code = pytest.main(["-p", "no:cacheprovider", f"--ubench-results={results}", *args])
    return code, capsys.readouterr().out


# --- a pytest session that runs no item writes nothing ------------------------------------------------------------


@pytest.mark.parametrize("args", [("--collect-only", "-q"), ("-k", "no_such_entry")], ids=["collect-only", "-k"])
def test_a_session_that_runs_no_entry_leaves_the_committed_tables(tmp_path: Path, monkeypatch, capsys,
                                                                   args: tuple[str, ...]) -> None:
    spec = _copy_board(tmp_path / "checkout")
    out = spec.parent / "synthetic"
    before = _tree(out)
    assert any(name.startswith("geffect/") and name.endswith(".png") for name in before)
    results = tmp_path / "empty-store"
    code, stdout = _pytest(spec.parent.parent, results, str(spec), *args, monkeypatch=monkeypatch, capsys=capsys)
    assert code in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED), stdout
    if "--collect-only" in args:
        assert stdout.count("synthetic.yaml::") == 21, stdout
    else:
        assert "21 deselected" in stdout, stdout
    assert _tree(out) == before  # board.md/csv/html, tradeoff.png and every G-effect plot, byte for byte
    assert not results.exists()
    assert "leaderboard synthetic" not in stdout


def test_a_collection_error_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    spec = _copy_board(tmp_path / "checkout")
    (spec.parent / "broken.yaml").write_text(spec.read_text().replace("{method: ga, label: GA}",
                                                                      "{method: nop, label: GA}"))
    before = _tree(spec.parent / "synthetic")
    code, stdout = _pytest(spec.parent.parent, tmp_path / "empty-store", str(spec.parent), monkeypatch=monkeypatch,
                           capsys=capsys)
    assert code == pytest.ExitCode.INTERRUPTED, stdout
    assert "unknown method 'nop'" in stdout
    assert _tree(spec.parent / "synthetic") == before
    assert not (tmp_path / "empty-store").exists()


# --- ubench board -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["copy", "committed"])
def test_ubench_board_on_an_empty_store_is_exit_2_naming_the_store(tmp_path: Path, capsys, where: str) -> None:
    """Also on the committed spec itself, where ``--results`` OTHER redirects the tables to OTHER/boards/."""
    spec = _copy_board(tmp_path) if where == "copy" else SPEC
    out = spec.parent / "synthetic"
    before = _tree(out)
    empty = tmp_path / "empty-store"
    assert main(["board", str(spec), "--results", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ubench: error: ") and "\n" not in err, err
    assert f"in the store {empty.resolve()};" in err and "no record of any of the board's 21 cells" in err
    assert _tree(out) == before
    assert not empty.exists()
    assert main(["board", str(spec), "--results", str(empty), "--out", str(tmp_path / "tables")]) == 2
    assert not (tmp_path / "tables").exists() and not empty.exists()


def test_a_partial_store_writes_under_the_store_and_says_so(bundle, tmp_path: Path, capsys) -> None:
    spec = _copy_board(tmp_path, methods=["GA", "NPO"])
    out = spec.parent / "synthetic"
    before = _tree(out)
    results = _store_from_release(bundle, tmp_path / "results", ["NPO"])
    leftover = results / "boards" / "synthetic" / "geffect" / "geffect_heatmap-old.png"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"an earlier partial build")
    assert main(["board", str(spec), "--results", str(results)]) == 0
    stdout = capsys.readouterr().out
    written = results / "boards" / "synthetic"
    note = (f"ubench: 3 of 6 cells missing in {results}: wrote tables to {written.resolve()}; the committed tables "
            f"in {out} are unchanged")
    assert note in stdout.splitlines()
    assert _tree(out) == before
    markdown = (written / "board.md").read_text()
    assert _seeds(markdown) == {"NPO": "3/3", "GA": "0/3"}
    assert (written / "board.csv").is_file() and (written / "board.html").is_file()
    assert (written / "geffect" / "geffect_heatmap-npo.png").is_file()
    assert leftover.read_bytes() == b"an earlier partial build"  # no pruning from a partial store
    assert str(tmp_path) not in markdown


def test_a_pytest_subset_on_a_partial_store_writes_under_the_store(bundle, tmp_path: Path, monkeypatch,
                                                                   capsys) -> None:
    spec = _copy_board(tmp_path / "checkout", methods=["GA", "NPO"])
    out = spec.parent / "synthetic"
    before = _tree(out)
    results = _store_from_release(bundle, tmp_path / "results", ["NPO"])
    # -k selects the entry whose record is stored: the item reuses it, nothing trains
    code, stdout = _pytest(spec.parent.parent, results, str(spec), "-k", "NPO", monkeypatch=monkeypatch,
                           capsys=capsys)
    assert code == pytest.ExitCode.OK and "3 passed, 3 deselected" in stdout, stdout
    assert _tree(out) == before
    assert (results / "boards" / "synthetic" / "board.md").is_file()
    assert "3 of 6 cells missing in" in stdout and f"the committed tables in {out} are unchanged" in stdout


def test_a_complete_store_rewrites_the_board_folder_and_prunes_it(bundle, tmp_path: Path, capsys) -> None:
    spec = _copy_board(tmp_path, methods=["GA", "NPO"])
    out = spec.parent / "synthetic"
    results = _store_from_release(bundle, tmp_path / "results", ["GA", "NPO"])
    assert main(["board", str(spec), "--results", str(results)]) == 0
    stdout = capsys.readouterr().out
    assert f"wrote {out / 'board.md'}" in stdout and "cells missing" not in stdout
    assert not (results / "boards").exists()
    plots = sorted(p.name for p in (out / "geffect").glob("*.png"))
    assert plots == ["geffect_heatmap-ga.png", "geffect_heatmap-npo.png", "geffect_instances-ga.png",
                     "geffect_instances-npo.png", "geffect_steps.png"]  # the other methods' plots pruned
    markdown = (out / "board.md").read_text()
    assert _seeds(markdown) == {"NPO": "3/3", "GA": "3/3"}
    # the spec differs from the released one: the release line names the board file, never by a local path
    assert "(`ubench release synthetic.yaml` freezes the current state)" in markdown
    for name in ("board.md", "board.html", "board.csv"):
        assert str(tmp_path) not in (out / name).read_text() and "/tmp" not in (out / name).read_text()


def test_the_release_line_names_a_committed_board_relative_to_the_repository() -> None:
    from bench.release.bundle import ReleaseStatus, release_line, shared_board_path
    from bench.specs.board import LeaderboardSpec

    board = LeaderboardSpec.load(SPEC)  # an absolute path, as pytest gives it
    assert shared_board_path(board) == "leaderboards/synthetic.yaml"
    current = release_line(board, None, ReleaseStatus("7+0123456789", True, "0123456789" * 6 + "abcd"))
    assert "cite with `ubench cite leaderboards/synthetic.yaml@7+0123456789`" in current
    changed = release_line(board, None, ReleaseStatus("7+0123456789", False, "f" * 64))
    assert "`ubench release leaderboards/synthetic.yaml`" in changed
    assert str(REPO) not in current + changed
