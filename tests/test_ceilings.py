"""Ceiling tests of the experiment: methods that ask whether a repository's own data can
help at all (repo-examples: its solved training tasks before the prompt)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from conftest import make_repo, make_tiny_model  # noqa: E402


def _test_file(name: str) -> str:
    body = "".join(f"def test_{name}_{k}():\n    assert {name}.value({k}) == '{name}-{k * 3}'\n\n"
                   for k in range(40))
    return f"import {name}\n\n\n{body}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from miners.build import build
    root = tmp_path_factory.mktemp("ceil")
    names = ["alpha", "bravo", "charlie"]
    rows = []
    for n in names:
        repo = make_repo(root / n, {f"{n}.py": f"def value(k):\n    return '{n}-' + str(3 * k)\n",
                                    f"tests/test_{n}.py": _test_file(n)})
        rows.append({"repo_id": f"c/{n}", "url": str(repo), "split": "train"})
    (root / "repos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build(root / "repos.jsonl", root / "bench", progress=False)
    tiny = make_tiny_model(root / "tiny", [_test_file(n) for n in names])
    return root / "bench", tiny


def test_repo_examples_put_the_repositorys_solved_tasks_before_the_prefix(world, tmp_path):
    from evaluators.harness import evaluate
    from evaluators.registry import RunContext, get_method
    from repopeftbench.dataset import Benchmark
    bench, tiny = world
    b = Benchmark(bench)
    tasks = b.tasks("static", "test_in_repo")
    method = get_method("repo-examples")(RunContext(model_name=str(tiny)))
    method.setup(b, "static")
    method.prepare(tasks)
    by_repo: dict[str, list[dict]] = {}
    for t in tasks:
        by_repo.setdefault(t["repo_id"], []).append(t)
    train_targets = {r: {t["target"] for t in b.train_tasks("static", repos=[r])} for r in by_repo}
    for repo, group in by_repo.items():
        own = method.predict(repo, group)
        method.set_audit_mode("other")
        other = method.predict(repo, group)
        method.set_audit_mode("own")
        name = repo.split("/")[1]
        assert all(r.prompt.endswith(t["prefix"]) for r, t in zip(own, group))
        assert own[0].prompt.count("a solved example from this codebase") == 4
        assert f"'{name}-" in own[0].prompt.split("the task from this codebase")[0]
        assert f"'{name}-" not in other[0].prompt.split("the task from this codebase")[0]
        examples = [line.split(" == ")[1] for line in own[0].prompt.split("the task")[0].splitlines()
                    if " == " in line and "value(" in line and line.endswith("'")]
        assert set(examples) & train_targets[repo]                 # solved training tasks
        assert not {t["target"] for t in group} & set(examples)   # never the task's own answer
    res = evaluate(bench, "static", "test_in_repo", "repo-examples", str(tiny), tmp_path / "run",
                   progress=False, scoring="teacher-forced")
    assert set(res.audit) >= {"own", "other", "own_minus_other", "own_minus_other_tf_logprob"}
    from repopeftbench.errors import UserError
    with pytest.raises(UserError, match="in-repo splits only"):
        method.check_split("static", "test_cross_repo")
