"""The context table: non-test code and docs at the static snapshot, bad files counted."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from miners.build import BuildConfig, build
from miners.context_miner import ContextConfig
from repopeftbench.dataset import Benchmark

from conftest import make_repo

TEST = "def test_one():\n    assert compute(1) == 22\n"


def _repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "ctx", {
        "pkg/__init__.py": "",
        "pkg/core.py": "def compute(x):\n    return x + 1\n",
        "README.md": "# Title\n\nUse `compute`.\n",
        "docs/guide.rst": "Guide\n=====\n",
        "pkg/blob.py": b"x = 1\0\0\0binary\n",
        "pkg/latin1.py": "# caf\xe9\nNAME = 'caf\xe9'\n".encode("latin-1"),
        "pkg/huge.py": "X = 1\n" * 200,               # 1,200 bytes > the 1,000-byte limit
        "pkg/data.json": '{"not": "context"}',
        "tests/test_core.py": TEST,
        "tests/helpers.py": "HELPER = 1\n",
        "test_top.py": TEST.replace("one", "two"),
    })
    os.symlink("core.py", repo / "pkg" / "link.py")
    from conftest import commit_files
    commit_files(repo, {}, message="add a symlink", date="2024-01-02T00:00:00Z")
    return repo


def test_context_table(tmp_path):
    repo = _repo(tmp_path)
    lst = tmp_path / "repos.jsonl"
    lst.write_text(json.dumps({"repo_id": "t/ctx", "url": str(repo)}) + "\n")
    out = tmp_path / "bench"
    config = BuildConfig(context=ContextConfig(max_file_bytes=1000))
    build(lst, out, config, progress=False)

    rows = pq.read_table(out / "context.parquet").to_pylist()
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert [r["path"] for r in rows] == ["README.md", "docs/guide.rst", "pkg/__init__.py",
                                         "pkg/core.py"]
    core = rows[3]
    assert core == {"repo_id": "t/ctx", "commit_sha": head, "path": "pkg/core.py", "size": 33,
                    "content": "def compute(x):\n    return x + 1\n"}
    counts = json.loads((out / "build_report.json").read_text())["filter_counts"]["context"]
    assert counts == {"file_binary": 1, "file_non_utf8": 1, "file_symlink": 1,
                      "file_too_large": 1}
    assert "context.parquet" in json.loads((out / "manifest.json").read_text())["files"]

    bench = Benchmark(out)
    assert [r["path"] for r in bench.context("t/ctx", columns=["path"])] == [
        r["path"] for r in rows]
    assert bench.context("t/other") == []

    from datasets import load_dataset
    ds = load_dataset(str(out), "context")
    assert sorted(ds["context"]["path"]) == [r["path"] for r in rows]


def test_every_column_is_described_in_the_card(tmp_path):
    from repopeftbench.schema import COLUMN_DOCS, TABLES
    for table, schema in TABLES.items():
        assert set(schema.names) == set(COLUMN_DOCS[table]), table
    repo = _repo(tmp_path)
    lst = tmp_path / "repos.jsonl"
    lst.write_text(json.dumps({"repo_id": "t/ctx", "url": str(repo)}) + "\n")
    build(lst, tmp_path / "bench", BuildConfig(tracks=("static", "evolution")), progress=False)
    card = (tmp_path / "bench" / "README.md").read_text()
    assert "`production_code_diff`" in card and "`content`" in card
    assert str(tmp_path) not in card          # no path of the build machine
    assert "{'" not in card and "':" not in card.split("## Columns")[1]  # no raw dicts
