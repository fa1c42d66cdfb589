"""Sharded evaluation: shards of whole repositories, merged into the unsharded run."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from evaluators.harness import evaluate, merge, shard_repos  # noqa: E402
from repopeftbench.cli import main  # noqa: E402
from repopeftbench.errors import UserError  # noqa: E402

from conftest import build_bench, make_tiny_model  # noqa: E402

FILES = {"pkg/m.py": "def f(x):\n    return x * 2\n",
         "tests/test_m.py": "".join(f"def test_{k}():\n    assert f({k}) == {2 * k}\n"
                                    f"    assert str(f({k})) == '{2 * k}'\n\n" for k in range(12))}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    bench = build_bench(root, FILES, ["cr_test"] * 5, "s")
    return bench, make_tiny_model(root / "tiny", [FILES["tests/test_m.py"]])


def _comparable(results) -> dict:
    d = results.to_dict()
    for k in ("wall_time_s", "n_predicted_now"):
        d.pop(k)
    return d


def test_shards_deal_whole_repositories_evenly():
    tasks = [{"repo_id": r, "task_id": f"{r}{i}"} for r, n in (("a", 9), ("b", 5), ("c", 4), ("d", 1))
             for i in range(n)]
    deal = [shard_repos(tasks, i, 2) for i in range(2)]
    assert deal == [{"a", "d"}, {"b", "c"}]                # 10 and 9 tasks
    assert set().union(*(shard_repos(tasks, i, 3) for i in range(3))) == {"a", "b", "c", "d"}
    with pytest.raises(UserError, match="0 <= I < N"):
        shard_repos(tasks, 2, 2)


@pytest.mark.parametrize("scoring", ["generate", "teacher-forced"])
def test_merged_shards_equal_the_unsharded_run(world, tmp_path, scoring):
    bench, tiny = world
    whole = evaluate(bench, "static", "test_cross_repo", "pretrained", str(tiny), tmp_path / "whole",
                     progress=False, scoring=scoring)
    shards = [evaluate(bench, "static", "test_cross_repo", "pretrained", str(tiny), tmp_path / f"s{i}",
                       progress=False, scoring=scoring, shard=(i, 2)) for i in range(2)]
    assert sum(s.scores["n_tasks"] for s in shards) == whole.scores["n_tasks"]
    assert not set(shards[0].shard["repos"]) & set(shards[1].shard["repos"])
    merged = merge([tmp_path / "s1", tmp_path / "s0"], tmp_path / "merged")
    assert _comparable(merged) == _comparable(whole)
    for name in ("samples.jsonl", "predictions.jsonl"):
        if (tmp_path / "whole" / name).exists():
            assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m2")]) == 0


def test_merge_refuses_shards_of_other_runs_and_gaps(world, tmp_path):
    bench, tiny = world
    for i in range(2):
        evaluate(bench, "static", "test_cross_repo", "pretrained", str(tiny), tmp_path / f"a{i}",
                 progress=False, shard=(i, 2), scoring="teacher-forced")
    evaluate(bench, "static", "test_cross_repo", "pretrained", str(tiny), tmp_path / "other",
             progress=False, shard=(1, 2), scoring="teacher-forced", seed=1)
    with pytest.raises(UserError, match="a shard of another run"):
        merge([tmp_path / "a0", tmp_path / "other"], tmp_path / "m")
    with pytest.raises(UserError, match="needs each of 0..1 once"):
        merge([tmp_path / "a0"], tmp_path / "m")
    with pytest.raises(UserError, match="needs each of 0..1 once"):
        merge([tmp_path / "a0", tmp_path / "a0"], tmp_path / "m")
    assert json.loads((tmp_path / "a0" / "results.json").read_text())["shard"]["count"] == 2
