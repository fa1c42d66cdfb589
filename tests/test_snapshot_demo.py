"""A directory without git history is read as a one-commit snapshot (even inside another
repository's work tree), deterministically; the demo's repository list is made of
installed packages' test suites and this project, with forced splits."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from conftest import make_repo
from evaluators.demo import PROJECT_ID, default_repo_list
from miners.build import build

TEST_FILE = "".join(f"def test_{k}():\n    assert compute({k}) == {k * 3 + 1000}\n\n" for k in range(6))


def test_plain_directory_is_mined_as_a_snapshot(tmp_path):
    outer = make_repo(tmp_path / "outer", {"README.md": "# an unrelated repository\n"})
    pkg = outer / "site-packages" / "calc"          # below a work tree, but no .git of its own
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def compute(x):\n    return 3 * x + 1000\n")
    (pkg / "tests" / "test_calc.py").write_text(TEST_FILE)
    (pkg / "data.bin").write_bytes(b"\x00\x01")
    for f in pkg.rglob("*"):
        os.utime(f, (1_700_000_000, 1_700_000_000))
    lst = tmp_path / "repos.jsonl"
    lst.write_text(json.dumps({"repo_id": "pypi/calc", "url": str(pkg)}) + "\n")
    shas = []
    for run in ("a", "b"):
        build(lst, tmp_path / run, progress=False)
        repos = pq.read_table(tmp_path / run / "repos.parquet").to_pylist()
        assert repos[0]["source"] == "snapshot" and repos[0]["status"] == "ok"
        assert repos[0]["n_tasks"] == 6 and repos[0]["commit_timestamp"] == 1_700_000_000
        shas.append(repos[0]["commit_sha"])
        context = pq.read_table(tmp_path / run / "context.parquet").to_pylist()
        assert [r["path"] for r in context] == ["__init__.py"]    # not the outer repository
    assert shas[0] == shas[1]                                     # same directory, same commit
    assert (tmp_path / "a" / "repos.parquet").read_bytes() == (tmp_path / "b" / "repos.parquet").read_bytes()


def test_empty_directory_is_a_recorded_failure(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing\n")
    lst = tmp_path / "repos.jsonl"
    lst.write_text(json.dumps({"repo_id": "x/empty", "url": str(tmp_path / "empty")}) + "\n")
    summary = build(lst, tmp_path / "out", progress=False)
    assert summary.n_ok == 0 and not (tmp_path / "out").exists()   # nothing published
    row = json.loads((tmp_path / ".out.work" / "failures.jsonl").read_text().splitlines()[0])
    assert row["repo_id"] == "x/empty" and "no .py/.md/.rst file" in row["reason"]


def test_demo_list_is_installed_test_suites_and_this_project(tmp_path):
    rows = [json.loads(x) for x in default_repo_list(tmp_path).read_text().splitlines()]
    packages = [r for r in rows if r["repo_id"].startswith("pypi/")]
    assert len(packages) >= 5
    assert {r["split"] for r in packages} == {"train", "cr_test"}
    assert all(not (Path(r["url"]) / ".git").exists() for r in packages)
    project = [r for r in rows if r["repo_id"] == PROJECT_ID]
    if (Path(__file__).resolve().parents[1] / ".git").exists():
        assert project and project[0]["split"] == "train"
