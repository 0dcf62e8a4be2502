"""Citable releases (``ubench release``, ``ubench cite``, ``bench.release``, ``bench.release.citations``): a release is
a content-hashed, byte-reproducible bundle of a board's spec, task digests and records; board.md names it; BibTeX
cites the suite, the release and the papers on the board. The board's records are the committed fixture records
(``tests/fixtures/mini_records/``): nothing trains."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from bench.cli.main import main
from bench.grid.cells import plan
from bench.specs.board import LeaderboardSpec

from .conftest import BROKEN, copy_mini_records, fixture_board, mini_board

METHODS = "[{method: ga, label: GA}, {method: npo}]"
SYNTHETIC = Path(__file__).parent.parent / "leaderboards" / "synthetic.yaml"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``leaderboards/mini.yaml`` (GA, npo) and ``results/`` holding all its records."""
    folder = tmp_path_factory.mktemp("release")
    fixture_board(folder, methods=METHODS)
    copy_mini_records(folder / "results")
    return folder


def _copy(ran: Path, dest: Path) -> tuple[Path, Path]:
    """A private copy of the run folder (board YAML and store, no generated tables): (board path, results)."""
    shutil.copytree(ran, dest)
    shutil.rmtree(dest / "leaderboards" / "mini", ignore_errors=True)
    return dest / "leaderboards" / "mini.yaml", dest / "results"


def _release(board: Path, results: Path, *extra: str) -> int:
    return main(["release", str(board), "--results", str(results), *extra])


def _only_release(board: Path) -> Path:
    folders = [p for p in (board.parent / "mini" / "releases").iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1, folders
    return folders[0]


def _ga_record(board: Path, results: Path) -> Path:
    """The stored ``result.json`` of the board's GA cell."""
    (cell,) = [c for c in plan(LeaderboardSpec.load(board)) if c.method.display == "GA"]
    return results / "runs" / cell.spec.run_id / "result.json"


def _snapshot_tree(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_records_same_version_and_bytes(ran: Path, tmp_path: Path, capsys) -> None:
    from bench.data.tasks import load_task_config
    from bench.release.bundle import MANIFEST, read_bundle, verify

    board_a, results_a = _copy(ran, tmp_path / "a")
    board_b, results_b = _copy(ran, tmp_path / "b")  # another path: the version must not depend on it
    assert _release(board_a, results_a) == 0
    assert "released mini 1+" in capsys.readouterr().out
    assert _release(board_b, results_b) == 0
    capsys.readouterr()
    rel_a, rel_b = _only_release(board_a), _only_release(board_b)
    version = rel_a.name
    assert rel_b.name == version and re.fullmatch(r"1\+[0-9a-f]{10}", version)
    assert (rel_a / "bundle.tar.gz").read_bytes() == (rel_b / "bundle.tar.gz").read_bytes()
    manifest = json.loads((rel_a / MANIFEST).read_text())
    assert manifest["version"] == version and manifest["content_hash"].startswith(version[2:])
    assert verify(rel_a)

    # the content hash is the sha256 of a sha256sum listing of the bundle's files outside tables/ and provenance/
    files = read_bundle(rel_a / "bundle.tar.gz")
    hashed = sorted(p for p in files if not p.startswith(("tables/", "provenance/")))
    listing = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in hashed)
    assert hashlib.sha256(listing.encode()).hexdigest() == manifest["content_hash"]
    # what it holds: the board, task digests, every record with all its stored files (the fixture oracle's per-item
    # rows among them), the run env, the tables
    assert files["board/board.yaml"] == board_a.read_bytes()
    assert json.loads(files["tasks.json"])[0]["digest"] == load_task_config("synthetic-mini").digest
    runs = {p.split("/")[2] for p in files if p.startswith("records/runs/")}
    refs = {p.split("/")[2] for p in files if p.startswith("records/refs/")}
    assert len(runs) == 2 and len(refs) == 2
    for kind, ids in (("runs", runs), ("refs", refs)):
        for record_id in ids:
            stored_files = {p.name: p.read_bytes() for p in (results_a / kind / record_id).iterdir()}
            bundled = {p.rsplit("/", 1)[1]: data for p, data in files.items()
                       if p.startswith(f"records/{kind}/{record_id}/")}
            assert set(bundled) == set(stored_files)
            assert all(bundled[name] == data for name, data in stored_files.items() if name != "result.json")
    assert any(p.startswith("records/refs/") and p.endswith("/per_item.jsonl") for p in files)
    env = json.loads(files["provenance/env.json"])
    assert env and {"python", "torch", "transformers", "git_commit"} <= set(env[0]["env"])
    # records are hashed as evidence (no timings / env); the stored bytes travel as provenance
    some_run = sorted(runs)[0]
    evidence = json.loads(files[f"records/runs/{some_run}/result.json"])
    stored = json.loads(files[f"provenance/records/runs/{some_run}/result.json"])
    assert "timings" not in evidence and "env" not in evidence and "timings" in stored and "env" in stored
    assert {k: v for k, v in stored.items() if k not in ("timings", "env")} == evidence
    markdown = files["tables/board.md"]
    assert (b"| GA " in markdown or b"| **GA** " in markdown) and files["tables/board.csv"].startswith(b"task,method")

    # board.md names the release; an unchanged store keeps naming it
    markdown = (board_a.parent / "mini" / "board.md").read_text()
    assert f"**Release `{version}`**" in markdown.split("Budget")[0]
    assert main(["board", str(board_a), "--results", str(results_a)]) == 0
    assert f"**Release `{version}`**" in capsys.readouterr().out

    # releasing again with no change: the existing version, nothing written
    before = _snapshot_tree(board_a.parent / "mini")
    assert _release(board_a, results_a) == 0
    out = capsys.readouterr().out
    assert f"release {version} of mini already exists" in out and "nothing written" in out
    assert _snapshot_tree(board_a.parent / "mini") == before


def test_changed_record_gives_a_new_version(ran: Path, tmp_path: Path, capsys) -> None:
    board, results = _copy(ran, tmp_path / "w")
    assert _release(board, results) == 0
    first = _only_release(board).name
    record_path = _ga_record(board, results)
    # a rerun that reproduces every number (other timings, another machine's env) is the same release
    record = json.loads(record_path.read_text())
    record["timings"] = {k: v * 3 for k, v in record["timings"].items()}
    record["env"]["git_commit"] = "0" * 40
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True))
    assert main(["board", str(board), "--results", str(results)]) == 0
    capsys.readouterr()
    assert f"**Release `{first}`**" in (board.parent / "mini" / "board.md").read_text()
    # one changed number is a new release
    record = json.loads(record_path.read_text())
    record["metrics"]["forget/es"]["value"] += 0.125
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True))
    assert main(["board", str(board), "--results", str(results)]) == 0
    capsys.readouterr()
    assert f"**Unreleased changes since release `{first}`**" in (board.parent / "mini" / "board.md").read_text()
    assert _release(board, results) == 0
    versions = sorted(p.name for p in (board.parent / "mini" / "releases").iterdir())
    assert len(versions) == 2 and first in versions
    second = next(v for v in versions if v != first)
    assert f"**Release `{second}`**" in (board.parent / "mini" / "board.md").read_text()


def test_incomplete_board_is_refused_and_nothing_written(ran: Path, tmp_path: Path, capsys) -> None:
    board, results = _copy(ran, tmp_path / "w")
    fixture_board(board.parent.parent, methods="[{method: ga, label: GA}, {method: gd}, {method: npo}]")  # no gd
    assert _release(board, results) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ubench: error: ") and "\n" not in err, err
    assert "1 of 5 board entries are missing or not ok" in err and "/gd/seed0: missing" in err
    assert "--allow-incomplete" in err
    assert not (board.parent / "mini").exists()

    # a failed cell is refused too
    fixture_board(board.parent.parent, methods=f"[{{method: ga, label: GA}}, {BROKEN}]")
    assert _release(board, results) == 2
    assert "/Broken/seed0: failed (non-finite loss nan at step 1)" in capsys.readouterr().err
    assert not (board.parent / "mini").exists()

    assert _release(board, results, "--allow-incomplete") == 0
    capsys.readouterr()
    manifest = json.loads((_only_release(board) / "manifest.json").read_text())
    assert len(manifest["incomplete"]) == 1 and "Broken" in manifest["incomplete"][0]
    assert "failed" in manifest["incomplete"][0]


def _bibtex_entries(text: str) -> dict[str, str]:
    """Entries by key; every entry starts with @ and has balanced braces (comment lines start with %)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("%")).strip()
    entries = {}
    for chunk in re.split(r"\n\s*\n(?=@)", body):
        chunk = chunk.strip()
        assert chunk.startswith("@"), chunk
        depth = 0
        for char in chunk:
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, chunk
        assert depth == 0, chunk
        match = re.match(r"@(\w+)\{([^,\s]+),", chunk)
        assert match, chunk
        entries[match.group(2)] = chunk
    return entries


def test_cite_prints_bibtex_for_suite_release_and_papers(ran: Path, tmp_path: Path, capsys) -> None:
    from bench.release.citations import suite_version

    board, results = _copy(ran, tmp_path / "w")
    assert main(["cite", str(board), "--results", str(results)]) == 0  # no release yet: the current state
    entries = _bibtex_entries(capsys.readouterr().out)
    unreleased = next(text for key, text in entries.items() if key.endswith("_unreleased"))
    assert "UNRELEASED" in unreleased and "sha256:" in unreleased

    assert _release(board, results) == 0
    capsys.readouterr()
    version = _only_release(board).name
    manifest = json.loads((_only_release(board) / "manifest.json").read_text())
    for arg in (f"{board}@{version}", str(board)):  # named, and the current state that matches it
        assert main(["cite", arg, "--results", str(results)]) == 0
        entries = _bibtex_entries(capsys.readouterr().out)
        release_entry = entries[f"ubench_mini_{version.replace('+', '_')}"]
        assert f"version      = {{{version}}}" in release_entry and manifest["content_hash"] in release_entry
        assert f"version      = {{{suite_version()}}}" in entries["unlearning_bench"]
        # the protocol papers, GA's and NPO's papers, and the task family's (the synthetic task follows TOFU)
        assert {"wang2024unlearning", "wang2025rethinking", "jang2023knowledge", "zhang2024negative",
                "maini2024tofu"} <= set(entries)
        assert "eprint        = {2404.05868}" in entries["zhang2024negative"]

    assert main(["cite", f"{board}@1+0000000000", "--results", str(results)]) == 2
    assert "no release '1+0000000000'" in capsys.readouterr().err


def test_cite_comments_a_method_without_an_entry(ran: Path, tmp_path: Path, capsys) -> None:
    board, results = _copy(ran, tmp_path / "w")
    fixture_board(board.parent.parent, methods=f"[{{method: ga, label: GA}}, {BROKEN}]")
    code = main(["cite", str(board), "--results", str(results)])
    assert code == 0
    out = capsys.readouterr().out
    assert "% method nan_loss: no BibTeX entry" in out
    assert "jang2023knowledge" in _bibtex_entries(out)


SUBMITTED_ENTRY = """method: {name}
version: "1"
label: CA
paper: "Person 2025, Confidence ascent (a test entry)"
authors: [A. Person, B. Someone]
citation: |
  @misc{{person2025ca,
    title  = {{Confidence ascent}},
    author = {{Person, A. and Someone, B.}},
    year   = {{2025}}
  }}
params: {{alpha: 2.0}}
budget: {{steps: 4, lr: 0.0005, batch_size: 8}}
plugin: {name}.py
submitted: '2026-01-01'
"""


def _submit_entry(board: Path, name: str) -> str:
    """Add to the board's entries folder what ``ubench submit`` writes for method ``name`` (the
    ``ubench new-method`` template; a name per test, as a process registers a name once) as label CA: the entry
    file, with its BibTeX, and the plug-in. Returns the ``%`` line ``ubench cite`` writes about it."""
    from bench.submit.scaffold import render_method

    entries = board.parent / "mini" / "entries"
    entries.mkdir(parents=True, exist_ok=True)
    (entries / f"{name}.py").write_text(render_method(name))
    (entries / "ca.yaml").write_text(SUBMITTED_ENTRY.format(name=name))
    return (f"% method {name} as 'CA': version 1; plug-in file {name}.py; paper: Person 2025, Confidence ascent "
            f"(a test entry); authors: A. Person, B. Someone")


def test_cite_prints_a_submitted_entrys_bibtex(ran: Path, tmp_path: Path, capsys) -> None:
    """Before its cell has run, ``ubench cite`` takes a submitted method's BibTeX, paper and authors from its entry
    file (the class has no ``bibtex``), not "no BibTeX entry"."""
    board, results = _copy(ran, tmp_path / "w")
    origin_line = _submit_entry(board, "cite_entry_method")
    assert main(["cite", str(board), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "% method cite_entry_method: no BibTeX entry" not in out
    assert origin_line in out
    entries = _bibtex_entries(out)
    assert "person2025ca" in entries and "author = {Person, A. and Someone, B.}" in entries["person2025ca"]
    assert "jang2023knowledge" in entries  # the built-in methods' papers are still there


def _shared_outputs(folder: Path, board: Path, results: Path, version: str, capsys) -> dict[str, str]:
    """Every output meant to be shared, by name: the tables and HTML pages written under ``folder``, the release's
    manifest and bundle files, and ``ubench cite`` of the release and of the current state."""
    from bench.release.bundle import read_bundle

    out = {str(p.relative_to(folder)): p.read_text() for pattern in ("board.md", "board.csv", "board.html")
           for p in folder.rglob(pattern)}
    release = board.parent / "mini" / "releases" / version
    out["manifest.json"] = (release / "manifest.json").read_text()
    out.update({f"bundle:{path}": data.decode() for path, data in read_bundle(release / "bundle.tar.gz").items()})
    for arg in (f"{board}@{version}", str(board)):
        assert main(["cite", arg, "--results", str(results)]) == 0
        out[f"cite {arg}"] = capsys.readouterr().out
    return out


def test_a_submitted_entry_travels_to_record_html_release_and_cite_with_no_local_path(ran: Path, tmp_path: Path,
                                                                                      capsys) -> None:
    """The entry's citation, the plug-in file's name and the class version go into the run record's ``origin``
    (outside its id and evidence), the HTML details, the release manifest and ``ubench cite``; no shared output
    names the temporary folder the board lives in."""
    board, results = _copy(ran, tmp_path / "w")
    origin_line = _submit_entry(board, "travel_entry_method")
    assert main(["run", str(board), "--results", str(results), "-k", "CA", "--jobs", "1"]) == 0
    (ca,) = [c for c in plan(LeaderboardSpec.load(board)) if c.method.display == "CA"]
    stored = json.loads((results / "runs" / ca.spec.run_id / "result.json").read_text())
    assert stored["status"] == "ok"
    assert stored["origin"] == {"version": "1", "plugin": "travel_entry_method.py", "entry": "ca.yaml",
                                "paper": "Person 2025, Confidence ascent (a test entry)",
                                "authors": ["A. Person", "B. Someone"],
                                "citation": yaml.safe_load(SUBMITTED_ENTRY.format(name="x"))["citation"].strip()}
    from bench.runtime.records import evidence

    assert "origin" not in evidence(stored) and stored["id"] == ca.spec.run_id
    assert "origin" not in json.loads(_ga_record(board, results).read_text())  # built in: no key at all

    assert _release(board, results) == 0
    capsys.readouterr()
    version = _only_release(board).name
    outputs = _shared_outputs(tmp_path, board, results, version, capsys)
    manifest = json.loads(outputs["manifest.json"])
    assert manifest["origins"] == {"CA": {"method": "travel_entry_method", **stored["origin"]}}
    assert json.loads(outputs[f"bundle:provenance/records/runs/{ca.spec.run_id}/result.json"])["origin"] == \
        stored["origin"]
    html = next(text for name, text in outputs.items() if name.endswith("board.html"))
    assert "@misc{person2025ca," in html and "A. Person, B. Someone" in html and "travel_entry_method.py" in html
    for arg in (f"{board}@{version}", str(board)):
        assert origin_line in outputs[f"cite {arg}"] and "@misc{person2025ca," in outputs[f"cite {arg}"]
    local = {str(tmp_path), str(tmp_path.resolve())}
    leaks = sorted(name for name, text in outputs.items() if any(path in text for path in local))
    assert not leaks, leaks


def test_citations_cover_every_registered_method_and_task_family() -> None:
    """Every method's and task's arXiv id has a BibTeX entry, declared on the method class (``bibtex``) or in the
    task YAML (``papers:``), and one key names one entry everywhere."""
    from bench.data.tasks import load_task_config, task_names
    from bench.registry import METHODS, TASKS
    from bench.release.citations import PROTOCOL_PAPERS, collect, family_papers, method_papers
    from bench.specs.papers import ARXIV_ID

    declared = list(PROTOCOL_PAPERS)
    for name in METHODS.names():
        paper = getattr(METHODS.get(name), "paper", "")
        if not ARXIV_ID.search(paper or ""):
            continue  # a test plug-in without a paper
        papers = method_papers(name)
        assert papers, name
        assert set(ARXIV_ID.findall(paper)) <= {p.eprint for p in papers}, (name, paper)
        declared += papers
    for family in TASKS.names():
        assert family_papers(family), family
    for task in task_names():
        config = load_task_config(task)
        assert set(ARXIV_ID.findall(config.citation)) <= {p.eprint for p in family_papers(config.family)}, task
        declared += config.papers
    assert len(collect(declared)) == 17  # the hand-kept list this replaced (15), each declared alike; + PDU, AltPO


def test_a_bad_paper_is_a_one_line_error_naming_the_file_and_field(tmp_path: Path) -> None:
    from bench.data.tasks import load_task_config
    from bench.methods.papers import MAINI2024_TOFU
    from bench.release.citations import collect
    from bench.specs.mapping import SpecError

    source = (Path(__file__).parent.parent / "tasks" / "synthetic" / "mini.yaml").read_text()
    task = tmp_path / "mini.yaml"
    task.write_text(source.replace('eprint: "2401.06121"', "eprint: 2401.06120"))  # unquoted: a float
    with pytest.raises(SpecError) as info:
        load_task_config(str(task))
    assert str(info.value) == f"{task}: papers[0].eprint: expected str, got float 2401.0612"
    with pytest.raises(SpecError, match="BibTeX key maini2024tofu: declared twice with different year"):
        collect([MAINI2024_TOFU, dataclasses.replace(MAINI2024_TOFU, year=2023)])


def test_citation_cff_parses_with_required_keys() -> None:
    from bench.release.citations import suite_version

    cff = yaml.safe_load((Path(__file__).parent.parent / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["message"] and cff["title"] and cff["authors"]
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    assert str(cff["version"]) == suite_version()


def test_a_board_without_releases_keeps_its_tables(tmp_path: Path) -> None:
    """No release folder: board.md gets no release line, so a board's tables do not change until it is released."""
    from bench.release.bundle import release_line
    from bench.runtime.store import Store
    from bench.specs.board import LeaderboardSpec

    board = LeaderboardSpec.load(mini_board(tmp_path))
    assert release_line(board, Store(tmp_path / "results")) == ""


def test_the_committed_synthetic_release_verifies() -> None:
    """Every committed release of the default board matches its manifest (file hashes and content hash), and the
    committed board.md names one of them."""
    from bench.release.bundle import read_manifests, verify
    from bench.release.snapshot import releases_dir
    from bench.specs.board import LeaderboardSpec

    board = LeaderboardSpec.load(SYNTHETIC)
    releases = [releases_dir(board) / m["version"] for m in read_manifests(board)]  # oldest first (10 after 9)
    if not releases:
        pytest.skip("the synthetic board has no release yet")
    for folder in releases:
        assert verify(folder), folder
    markdown = (board.out_dir / "board.md").read_text()
    assert any(f"Release `{folder.name}`" in markdown for folder in releases)
    # the board spec as the code parses it today is the one the newest release hashed: a new spec field (or a
    # changed default) that is not part of what a board measures must not silently unpin the release
    from bench.release.bundle import read_bundle
    from bench.release.snapshot import _canonical_spec

    bundle = read_bundle(releases[-1] / "bundle.tar.gz")
    released = json.loads(next(data for path, data in bundle.items() if path.endswith("board/spec.json")))
    assert _canonical_spec(board) == released
    assert _canonical_spec(dataclasses.replace(board, output="elsewhere")) == released  # where tables go
    assert _canonical_spec(dataclasses.replace(board, keep_models=True)) == released  # models kept or not


def test_a_release_bundles_the_references_of_every_replicate(tmp_path: Path) -> None:
    """Each seed's cells are scored against its own replicate's target and retain oracle, so a release holds the
    reference records of every seed the board uses (the newest committed release, re-read from its bundle)."""
    from bench.grid.cells import read_board
    from bench.release.reproduce import latest_version, released_store
    from bench.release.snapshot import snapshot
    from bench.specs.board import LeaderboardSpec

    board = LeaderboardSpec.load(SYNTHETIC)
    store = released_store(board, latest_version(board), tmp_path / "released")
    records = read_board(board, store)
    expected = {ref_id for ids in records.reference_ids.values() for ref_id in ids}
    assert len(expected) == 2 * len(board.seeds) == 6  # target and oracle of each replicate
    snap = snapshot(board, store, records)
    assert {path.split("/")[2] for path in snap.files if path.startswith("records/refs/")} == expected
    assert not snap.incomplete and snap.n_expected == len(expected) + len(records.cells)

    store.root.joinpath("refs", sorted(expected)[0], "result.json").unlink()  # one replicate's reference gone
    snap = snapshot(board, store)
    assert len(snap.incomplete) == 1 and sorted(expected)[0] in snap.incomplete[0]


def test_option_papers_follow_the_entries_options() -> None:
    """GRU and SAM are options of any method: an entry that switches one on cites its paper (by arXiv id), one that
    leaves it at its default does not."""
    from bench.release.citations import option_papers

    assert [p.eprint for p in option_papers({"rectify": "gru"})] == ["2503.09117"]
    assert [p.eprint for p in option_papers({"sam_rho": 0.01, "beta": 0.1})] == ["2502.05374"]
    assert option_papers({"rectify": "none", "sam_rho": 0.0, "temperature": 2.0}) == ()
