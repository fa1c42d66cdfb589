"""Evolution track: scripted histories with hand-checked kept commits, events, tasks, diffs."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from miners.evolution_miner import (EvolutionMinerConfig, assertion_events, eval_cap,
                                    mine_evolution, smart_cap)
from miners.git import GitRepo
from miners.build import BuildConfig, build
from repopeftbench.schema import FILE_SPLITS

from conftest import commit_files, git, make_repo

T0 = "def test_a():\n    assert f(1) == 10\n"


def day(n: int) -> str:
    return f"2024-01-{n:02d}T00:00:00Z"


def history(path: Path) -> dict[str, str]:
    """A scripted history; returns the sha of each named step."""
    shas = {}
    make_repo(path, {"pkg/core.py": "def f(x):\n    return 10 * x\n", "tests/test_a.py": T0},
              date=day(1), message="add")
    shas["add"] = git(path, "rev-parse", "HEAD").strip()
    # Edit elsewhere in the file (an import) and in production code: no assertion event.
    shas["import"] = commit_files(path, {"tests/test_a.py": "import os\n" + T0,
                                         "pkg/core.py": "def f(x):\n    return x * 10\n"},
                                  date=day(2), message="import")
    # Modify the assertion in place and add one after it.
    shas["modify"] = commit_files(path, {"tests/test_a.py": "import os\ndef test_a():\n"
                                         "    assert f(1) == 100\n    assert f(2) == 'twenty'\n",
                                         "README.md": "# docs\n"}, date=day(3), message="modify")
    # Rename the test file unchanged: no event.
    git(path, "mv", "tests/test_a.py", "tests/test_b.py")
    shas["rename"] = commit_files(path, {}, date=day(4), message="rename")
    # Break the syntax: no event, the last good state is kept.
    shas["broken"] = commit_files(path, {"tests/test_b.py": "def test_a(:\n    assert f(1) == 100\n"},
                                  date=day(5), message="broken")
    # Fix it, adding a new assertion: only the new one is an event.
    shas["fix"] = commit_files(path, {"tests/test_b.py": "import os\ndef test_a():\n"
                                      "    assert f(1) == 100\n    assert f(2) == 'twenty'\n"
                                      "    assert f(3) == 'thirty'\n"}, date=day(6), message="fix")
    # Delete the file, then restore it (a revert): everything comes back as added.
    git(path, "rm", "-q", "tests/test_b.py")
    shas["delete"] = commit_files(path, {}, date=day(7), message="delete")
    git(path, "revert", "--no-edit", "HEAD", date=day(8))
    shas["revert"] = git(path, "rev-parse", "HEAD").strip()
    # A branch merged back: the merge brings a new test through its first-parent diff.
    git(path, "checkout", "-q", "-b", "side")
    commit_files(path, {"tests/test_c.py": "class TestC:\n    def test_c(self):\n"
                        "        self.assertEqual(g(), 'side')\n"}, date=day(9), message="side")
    git(path, "checkout", "-q", "main")
    commit_files(path, {"pkg/other.py": "X = 1\n"}, date=day(10), message="main work")
    git(path, "merge", "-q", "--no-ff", "-m", "merge side", "side", date=day(11))
    shas["merge"] = git(path, "rev-parse", "HEAD").strip()
    return shas


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    path = tmp_path_factory.mktemp("evo") / "repo"
    shas = history(path)
    with GitRepo(path) as repo:
        result = mine_evolution(repo, shas["merge"], "e/repo", EvolutionMinerConfig())
    return path, shas, result


def test_kept_commits_and_events(scripted):
    _, shas, res = scripted
    kept = {c["commit_sha"]: c for c in res.commits}
    names = {v: k for k, v in shas.items()}
    assert [names.get(c["commit_sha"]) for c in res.commits] == ["add", "modify", "fix", "revert", "merge"]
    assert (kept[shas["modify"]]["n_added_assertions"], kept[shas["modify"]]["n_modified_assertions"]) == (1, 1)
    assert kept[shas["fix"]]["n_new_assertions"] == 1
    assert kept[shas["revert"]]["n_added_assertions"] == 3
    tasks = {(names[t["commit_sha"]], t["target"]): t for t in res.tasks}
    assert set(tasks) == {("add", "10"), ("modify", "100"), ("modify", "'twenty'"),
                          ("fix", "'thirty'"), ("revert", "100"), ("revert", "'twenty'"),
                          ("revert", "'thirty'"), ("merge", "'side')")}
    assert tasks[("modify", "100")]["event"] == "modified"
    assert tasks[("modify", "'twenty'")]["event"] == "added"
    fix = tasks[("fix", "'thirty'")]
    assert fix["test_file"] == "tests/test_b.py" and fix["lineno"] == 5 and fix["col_offset"] == 19
    assert fix["prefix"] == ("import os\ndef test_a():\n    assert f(1) == 100\n"
                             "    assert f(2) == 'twenty'\n    assert f(3) == ")
    merge = tasks[("merge", "'side')")]
    assert merge["test_class"] == "TestC" and merge["assertion_type"] == "unittest"
    assert res.counts["merge_commits"] == 1 and res.counts["root_commits"] == 1
    assert res.counts["test_file_renamed"] == 1 and res.counts["test_file_deleted"] == 1
    assert res.counts["file_syntax_error"] == 1


def test_production_diffs_span_back_to_previous_kept_commit(scripted):
    _, shas, res = scripted
    kept = {c["commit_sha"]: c["production_code_diff"] for c in res.commits}
    first = kept[shas["add"]]
    assert "+++ b/pkg/core.py" in first and "test_a.py" not in first  # against the empty tree
    modify = kept[shas["modify"]]  # covers the "import" commit's production change too
    assert "-    return 10 * x\n+    return x * 10" in modify and "+++ b/README.md" in modify
    assert kept[shas["fix"]] == ""  # nothing but tests changed since "modify"
    merge = kept[shas["merge"]]
    assert "+++ b/pkg/other.py" in merge and "test_c.py" not in merge


def test_assertion_events_rules():
    k = lambda f, s: (f, "assert", s)  # noqa: E731
    before = [k("t", "assert a == 1"), k("t", "assert b == 2")]
    # moved within the function: no event; new function: added
    assert assertion_events(before, [k("t", "assert b == 2"), k("t", "assert a == 1")]) == []
    assert assertion_events(before, before + [k("u", "assert c == 3")]) == [("added", 2)]
    # replaced at the same position: modified; the replaced one still present elsewhere: added
    assert assertion_events(before, [k("t", "assert a == 5"), k("t", "assert b == 2")]) == [("modified", 0)]
    assert assertion_events(before, [k("t", "assert a == 5"), k("t", "assert a == 1"),
                                     k("t", "assert b == 2")]) == [("added", 0)]


def test_caps_round_robin():
    tasks = [{"test_file": f, "test_class": None, "test_function": fn, "target": tgt}
             for f, fn, tgt in [("a.py", "t1", "x1"), ("a.py", "t1", "long1"), ("a.py", "t2", "long2"),
                                ("a.py", "t2", "long3"), ("a.py", "t3", "long4"), ("a.py", "t3", "long5"),
                                ("b.py", "t9", "long6")]]
    from collections import Counter
    counts = Counter()
    assert [t["target"] for t in eval_cap(tasks, 3, counts)] == ["x1", "long2", "long4"]
    assert counts["cap_commit"] == 4
    kept = smart_cap(tasks, 2, 4, counts)
    assert [t["target"] for t in kept] == ["long2", "long4", "long6"]
    assert counts["train_short_target"] == 1 and counts["train_cap_file"] == 3


def _evo_list(tmp_path: Path, repo: Path, n: int = 1) -> Path:
    lst = tmp_path / "repos.jsonl"
    lst.write_text("".join(json.dumps({"repo_id": f"e/r{i}", "url": str(repo)}) + "\n" for i in range(n)))
    return lst


def _tables(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_build_evolution_splits_and_datasets(tmp_path, scripted):
    repo, shas, _ = scripted
    out = tmp_path / "out"
    summary = build(_evo_list(tmp_path, repo), out, BuildConfig(tracks=("static", "evolution")),
                    progress=False)
    commits = [r for s in FILE_SPLITS if (out / "commits" / f"{s}.parquet").exists()
               for r in pq.read_table(out / "commits" / f"{s}.parquet").to_pylist()]
    assert len(commits) == 5 and summary.split_sizes["commits"]["train"] + sum(
        v for k, v in summary.split_sizes["commits"].items() if k != "train") == 5
    order = {"train": 0, "val": 1, "test": 2}
    ranked = sorted(commits, key=lambda c: c["commit_index"])
    assert [order[c["in_repo_split"]] for c in ranked] == sorted(order[c["in_repo_split"]] for c in ranked)
    assert [c["in_repo_split"] for c in ranked] == ["train", "train", "train", "train", "test"]
    datasets = pytest.importorskip("datasets")
    evo = datasets.load_dataset(str(out), "evolution", cache_dir=str(tmp_path / "hf"))
    com = datasets.load_dataset(str(out), "commits", cache_dir=str(tmp_path / "hf"))
    assert set(evo) <= set(FILE_SPLITS) and sum(len(v) for v in com.values()) == 5
    joined = {c["commit_sha"] for split in com.values() for c in split}
    assert all(t["commit_sha"] in joined for split in evo.values() for t in split)


def test_incremental_update_equals_from_scratch(tmp_path):
    repo = tmp_path / "repo"
    shas = history(repo)
    lst = _evo_list(tmp_path, repo)
    config = BuildConfig(tracks=("evolution",))
    inc = tmp_path / "inc"
    # First build on an older head, then the repository gains commits.
    git(repo, "checkout", "-q", "-b", "old", shas["fix"])
    git(repo, "branch", "-f", "main", shas["fix"])
    git(repo, "checkout", "-q", "main")
    build(lst, inc, config, progress=False)
    n_before = json.loads((inc.parent / f".{inc.name}.work/parts/evolution").glob("*.state.json").__next__().read_text())["n_commits"]
    git(repo, "reset", "-q", "--hard", shas["merge"])
    build(lst, inc, config, progress=False)
    scratch = tmp_path / "scratch"
    build(lst, scratch, config, progress=False)
    assert _tables(inc) == _tables(scratch)
    assert n_before == 6


def test_shallow_clone_is_a_clear_failure(tmp_path, scripted):
    repo, _, _ = scripted
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{repo}", str(shallow)], check=True)
    out = tmp_path / "out"
    build(_evo_list(tmp_path, shallow), out, BuildConfig(tracks=("static", "evolution")), progress=False)
    failures = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert failures == [{"repo_id": "e/r0", "source": f"{tmp_path / 'repos.jsonl'}:1", "track": "evolution",
                         "stage": "mine", "reason": "history incomplete: shallow clone (fetch with --unshallow)"}]
    assert (out / "static").is_dir()


def test_out_of_order_timestamps_are_counted(tmp_path):
    repo = make_repo(tmp_path / "r", {"tests/test_x.py": T0}, date=day(5))
    commit_files(repo, {"tests/test_x.py": T0 + "    assert f(2) == 20\n"}, date=day(2))
    with GitRepo(repo) as g:
        res = mine_evolution(g, g.resolve(), "r", EvolutionMinerConfig())
    assert res.counts["timestamp_out_of_order"] == 1 and len(res.commits) == 2


def test_a_file_that_never_parsed_before_gives_no_events(tmp_path):
    py2 = "def test_p():\n    print 'x'\n    assert f(1) == 10\n"
    repo = make_repo(tmp_path / "r", {"tests/test_x.py": py2}, date=day(1))
    commit_files(repo, {"tests/test_x.py": "def test_p():\n    print('x')\n    assert f(1) == 10\n"},
                 date=day(2))
    commit_files(repo, {"tests/test_x.py": "def test_p():\n    print('x')\n    assert f(1) == 10\n"
                        "    assert f(2) == 20\n"}, date=day(3))
    with GitRepo(repo) as g:
        res = mine_evolution(g, g.resolve(), "r", EvolutionMinerConfig())
    assert [t["target"] for t in res.tasks] == ["20"]  # the port to Python 3 is not an event
    assert res.counts["events_unknown_before"] == 1 and res.counts["file_syntax_error"] == 1


def _events_reference(before, after):
    """The plain statement of assertion_events: walk ``after``, each key's first n
    occurrences (n = its count before) are old, later ones new."""
    from collections import Counter
    remaining, after_count, position = Counter(before), Counter(after), Counter()
    by_func: dict = {}
    for key in before:
        by_func.setdefault(key[0], []).append(key)
    events = []
    for idx, key in enumerate(after):
        i = position[key[0]]
        position[key[0]] += 1
        if remaining[key] > 0:
            remaining[key] -= 1
            continue
        old = by_func.get(key[0])
        modified = old is not None and i < len(old) and old[i] != key and after_count[old[i]] == 0
        events.append(("modified" if modified else "added", idx))
    return events


def test_assertion_events_match_the_plain_statement_on_random_edits():
    import random

    from miners.evolution_miner import assertion_events
    rng = random.Random(0)
    for _ in range(3000):
        pool = [(f"f{rng.randrange(4)}", f"a{rng.randrange(6)}") for _ in range(10)]
        before = [rng.choice(pool) for _ in range(rng.randrange(0, 12))]
        after = list(before)
        for _ in range(rng.randrange(0, 5)):
            op = rng.randrange(3)
            if op == 0 or not after:
                after.insert(rng.randrange(len(after) + 1), rng.choice(pool))
            elif op == 1:
                after.pop(rng.randrange(len(after)))
            else:
                after[rng.randrange(len(after))] = rng.choice(pool)
        assert assertion_events(before, after) == _events_reference(before, after)
