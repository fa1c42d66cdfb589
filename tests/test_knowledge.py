"""Knowledge-source labels: hand-checked targets, and the column in a build."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from miners.build import BuildConfig, build
from miners.knowledge import label, pieces, repository_index

from conftest import make_repo

REPO = repository_index(["def compute(x):\n    return x + 1\n\nDEFAULT_NAME = 'widget-7'\n",
                         "class Parser:\n    TIMEOUT = 30\n"])


@pytest.mark.parametrize("target, prefix, expected", [
    ("3", "x = f(3)\nassert x == ", "prefix"),                  # the number is in the prefix
    ("121", "value = compute(3)\nassert value == ", "none"),    # computed
    ("compute(x))", "self.assertEqual(y, ", "repository"),
    ("compute(41))", "self.assertEqual(y, ", "none"),           # 41 occurs nowhere
    ("Parser.TIMEOUT)", "import pkg\nself.assertEqual(t, ", "repository"),
    ("30", "assert p.timeout == ", "repository"),               # a constant of the repository
    ("'widget-7'", "assert obj.name == ", "repository"),       # a string of the repository
    ("'widget-8'", "assert obj.name == ", "none"),
    ("'fine'", "s = 'fine'\nassert value() == ", "prefix"),
    ("True)", "self.assertTrue(", "prefix"),                   # keywords are the language
    ("len(items))", "items = []\nself.assertEqual(n, ", "prefix"),   # so are builtins
    ("ValueError, match=\"bad\")", "with pytest.raises(", "none"),
    ("x + y", "x = 1\ny = 2\nassert f() == ", "prefix"),
    ("1.5", "assert r == ", "none"),
])
def test_labels(target, prefix, expected):
    assert label(target, prefix, REPO) == expected


def test_pieces_of_a_target():
    p = pieces('foo(bar, "baz qux", 3.5, b"raw"))')
    assert p.words == {"foo", "bar", "3.5"} and p.texts == {"baz qux", "raw"}
    assert pieces("None").words == frozenset() and pieces("[]").texts == frozenset()


def test_every_task_of_a_build_has_a_label(tmp_path):
    repo = make_repo(tmp_path / "r", {
        "pkg/core.py": "LIMIT = 4096\n\ndef compute(x):\n    return x + 1\n",
        "tests/test_core.py": "from pkg.core import compute\n\n\ndef test_a():\n"
                              "    assert compute(1) == 22\n    assert compute(2) == LIMIT\n"
                              "    assert compute(3) == compute(2)\n"})
    lst = tmp_path / "l.jsonl"
    lst.write_text(json.dumps({"repo_id": "k/r", "url": str(repo)}) + "\n")
    out = tmp_path / "out"
    build(lst, out, BuildConfig(tracks=("static", "evolution")), workers=1, progress=False)
    rows = [r for p in (out / "static").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    by_target = {r["target"]: r["knowledge_source"] for r in rows}
    assert by_target == {"22": "none", "LIMIT": "repository", "compute(2)": "prefix"}
    evo = [r for p in (out / "evolution").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert evo and all(r["knowledge_source"] in ("prefix", "repository", "none") for r in evo)
    report = json.loads((out / "build_report.json").read_text())
    assert report["knowledge_sources"]["static"] == {"prefix": 1, "repository": 1, "none": 1}
    card = (out / "README.md").read_text()
    assert "| knowledge source | tasks | share |" in card and "knowledge_source" in card
