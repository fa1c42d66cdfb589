"""The `paper` selection profile (SPEC section 4.1) on a scripted repository, checked by hand."""
from __future__ import annotations

import json
from collections import Counter

from miners.build import BuildConfig, build
from miners.git import GitRepo
from miners.paper_profile import path_is_test, target_class, text_is_test
from miners.static_miner import StaticMinerConfig, mine_static

from conftest import make_repo

FILES = {
    "tests/test_a.py": (
        "def test_many():\n"
        "    assert f(1) == 10000\n"
        "    assert f(2) == 2\n"
        "    assert f(3) == (1,\n"
        "                    2)\n"
        "    assert f(4) == 'abc'\n"
        "    assert f(5) == None\n"
        "\n\n"
        "def test_other():\n"
        "    assert g() == 'abc'\n"
        "    assert g(1) == True\n"),
    "helpers/check.py": "import pytest\n\n\ndef test_h():\n    assert h() == 'hh'\n    assert h() == 'hh'\n",
    "src/util.py": "def util():\n    assert util2() == 'no'\n",
}


def test_paper_selection_by_hand(tmp_path):
    repo = make_repo(tmp_path / "r", FILES)
    git = GitRepo(repo)
    head = git.resolve("HEAD")
    config = StaticMinerConfig(profile="paper", cap_per_function=3, cap_per_repo=4)
    result = mine_static(git, head, "p/r", config)
    # helpers/check.py is a test file by its text; src/util.py is not
    assert result.n_test_files == 2
    # (1) test_many keeps its 3 shortest single-line targets: 2, None, 10000;
    # (3) the second 'hh' is a duplicate; (4) 6 tasks share 4 places by class: bool, none,
    # string and numeric get one each, and each class keeps its shortest target
    assert [(r["test_file"], r["target"]) for r in result.rows] == [
        ("helpers/check.py", "'hh'"), ("tests/test_a.py", "2"), ("tests/test_a.py", "None"),
        ("tests/test_a.py", "True")]
    assert +result.filter_counts == Counter({"cap_function": 2, "duplicate": 1, "cap_repo": 2})

    default = mine_static(git, head, "p/r", StaticMinerConfig(cap_per_function=3, cap_per_repo=4))
    assert default.n_test_files == 1 and "2" not in [r["target"] for r in default.rows]
    git.close()


def test_paper_rules():
    assert path_is_test("a/Testing/x.py") and path_is_test("contest.py") and not path_is_test("a/b.py")
    assert text_is_test(b"import unittest\n") and text_is_test(b"x = pytest.approx(1)\n")
    assert text_is_test(b"class MyTests:\n    pass\n") and text_is_test(b"async def test_x(): pass\n")
    assert not text_is_test(b"def helper():\n    return 'testing'\n")
    assert [target_class(t) for t in ["True)", "None", "b'x'", "-1.5", "[1]", "f(x)", "name",
                                      "a + b", "'s')", "1e3"]] == [
        "bool", "none", "string", "numeric", "collection", "call", "variable", "complex",
        "string", "numeric"]


def test_profile_is_recorded(tmp_path):
    repo = make_repo(tmp_path / "r", FILES)
    lst = tmp_path / "repos.jsonl"
    lst.write_text(json.dumps({"repo_id": "p/r", "url": str(repo)}) + "\n")
    build(lst, tmp_path / "b", BuildConfig(static=StaticMinerConfig(profile="paper")), progress=False)
    manifest = json.loads((tmp_path / "b/manifest.json").read_text())
    assert manifest["config"]["profile"] == "paper" and "profile" not in manifest["config"]["static"]
    assert "selection profile: paper" in (tmp_path / "b/README.md").read_text()
    from evaluators.harness import evaluate
    res = evaluate(tmp_path / "b", "static", "train", "gold", "-", tmp_path / "run", progress=False)
    assert res.dataset.profile == "paper"
    assert json.loads((tmp_path / "run/results.json").read_text())["dataset"]["profile"] == "paper"
