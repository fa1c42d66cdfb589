"""The training module and the LoRA baselines on a tiny model: masking, resume, PEFT files,
train once then evaluate, in-repo only for per-repository adapters."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from evaluators.harness import evaluate, train  # noqa: E402
from evaluators.training import (IGNORE, TrainConfig, encode_example,  # noqa: E402
                                 train_causal_lm)
from repopeftbench.cli import main  # noqa: E402
from repopeftbench.dataset import Benchmark  # noqa: E402

from conftest import build_bench, make_tiny_model  # noqa: E402

TESTS = {f"tests/test_t{i}.py": "".join(
    f"def test_{k}():\n    value = compute({k})\n    assert value == {k % 4 + 100}\n\n"
    for k in range(i * 8, i * 8 + 8)) for i in range(3)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), list(TESTS.values()))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    files = {**TESTS, "pkg/core.py": "def compute(x):\n    return x % 4 + 100\n"}
    return build_bench(tmp_path_factory.mktemp("bench"), files, [None, None, "cr_test"], "t")


def test_examples_mask_the_prefix_and_cut_it_from_the_left(tiny):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny)
    full = encode_example(tok, "assert value == ", "101", 1000)
    target = tok("101", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert full["input_ids"][-len(target):] == target
    assert full["labels"] == [IGNORE] * (len(full["input_ids"]) - len(target)) + target
    short = encode_example(tok, "x = compute(1)\nassert value == ", "101", len(target) + 3)
    assert len(short["input_ids"]) == len(target) + 3           # prefix cut from the left
    assert short["input_ids"][:3] == full["input_ids"][-len(target) - 3:-len(target)]


def test_training_resumes_from_its_last_checkpoint(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny)
    examples = [encode_example(tok, f"assert f({k}) == ", str(k + 100), 64) for k in range(16)]
    cfg = TrainConfig(max_steps=2, batch_size=4, save_steps=1, logging_steps=1, learning_rate=1e-3)
    first = train_causal_lm(AutoModelForCausalLM.from_pretrained(tiny), tok, examples, cfg,
                            tmp_path, progress=False)
    assert first.steps == 2 and (tmp_path / "trainer/checkpoint-2").exists()
    first_time = json.loads((tmp_path / "trainer/checkpoint-2/elapsed.json").read_text())["wall_time_s"]
    cfg.max_steps = 4
    second = train_causal_lm(AutoModelForCausalLM.from_pretrained(tiny), tok, examples, cfg,
                             tmp_path, progress=False)
    assert second.steps == 4 and [p["step"] for p in second.loss_curve] == [1, 2, 3, 4]
    # the time of both runs is reported, not only the resumed one's
    assert second.resumed_from_step == 2 and second.wall_time_s > first_time > 0
    curve = json.loads((tmp_path / "loss_curve.json").read_text())
    assert curve["steps"] == 4 and (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_shared_lora_trains_once_and_serves_any_split(bench, tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    opts = ["max_steps=3", "batch_size=4", "r=4", "alpha=8", "learning_rate=5e-3",
            "max_train_tasks_per_repo=6"]
    ckpt = train("shared-lora", bench, "static", tmp_path / "ckpt", model=str(tiny), options=opts,
                 progress=False)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), ckpt / "adapter")
    result = json.loads((ckpt / "shared/train_result.json").read_text())
    assert result["steps"] == 3 and result["n_tasks"] == 12  # 6 tasks from each train repo
    for split in ("test_in_repo", "test_cross_repo"):
        res = evaluate(bench, "static", split, "shared-lora", str(tiny), tmp_path / split,
                       checkpoint=ckpt, progress=False)
        assert res.scores["n_tasks"] > 0 and res.checkpoint == str(ckpt)
    # trained at 4,096 tokens (max_seq_len), it is not scored at another input budget
    from evaluators.backends.base import GenerationConfig
    from repopeftbench.errors import UserError
    with pytest.raises(UserError, match="max_seq_len.*--max-input-tokens 4096"):
        evaluate(bench, "static", "test_in_repo", "shared-lora", str(tiny), tmp_path / "short",
                 checkpoint=ckpt, progress=False, generation=GenerationConfig(max_input_tokens=256))


def test_per_repo_lora_is_in_repo_only(bench, tiny, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    opts = ["max_steps=2", "batch_size=2", "r=2", "alpha=4", "max_train_tasks_per_repo=4"]
    ckpt = train("per-repo-lora", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=opts, progress=False)
    index = json.loads((ckpt / "adapters.json").read_text())
    assert sorted(index) == ["t/r0", "t/r1"]
    for rel in index.values():
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), ckpt / rel)
    res = evaluate(bench, "static", "test_in_repo", "per-repo-lora", str(tiny), tmp_path / "run",
                   checkpoint=ckpt, progress=False)
    assert res.scores["n_repos"] == 2
    assert main(["evaluate", "--method", "per-repo-lora", "--checkpoint", str(ckpt), "--dataset",
                 str(bench), "--split", "test_cross_repo", "--model", str(tiny), "--out",
                 str(tmp_path / "cr"), "--no-progress"]) == 2
    assert "per-repo-lora serves in-repo splits only" in capsys.readouterr().err


def test_per_repo_lora_starts_from_a_shared_adapter_and_audits_another_repos(bench, tiny,
                                                                             tmp_path):
    from safetensors.torch import load_file

    from repopeftbench.errors import UserError
    lora = ["batch_size=2", "r=2", "alpha=4", "max_train_tasks_per_repo=4"]
    shared = train("shared-lora", bench, "static", tmp_path / "shared", model=str(tiny),
                   options=lora + ["max_steps=2", "learning_rate=5e-2"], progress=False)
    start = load_file(shared / "adapter" / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in start.items())

    def per_repo(out, *extra):
        ckpt = train("per-repo-lora", bench, "static", tmp_path / out, model=str(tiny),
                     options=lora + ["max_steps=2", f"init_adapter={shared}", *extra],
                     progress=False)
        index = json.loads((ckpt / "adapters.json").read_text())
        return ckpt, {r: load_file(ckpt / p / "adapter_model.safetensors")
                      for r, p in index.items()}

    _, frozen = per_repo("lr0", "learning_rate=0")        # no step taken: the shared adapter
    assert all(torch.equal(w[k], start[k]) for w in frozen.values() for k in start)
    ckpt, tuned = per_repo("lr", "learning_rate=5e-2")
    assert all(any(not torch.equal(w[k], start[k]) for k in start) for w in tuned.values())
    assert json.loads((ckpt / "method.json").read_text())["options"]["init_adapter"] == str(shared)
    # the same starting weights named another way (its adapter/ directory): nothing retrains
    made = {p: p.stat().st_mtime_ns for p in (ckpt / "adapters").rglob("adapter_model.safetensors")}
    train("per-repo-lora", bench, "static", ckpt, model=str(tiny), progress=False,
          options=lora + ["max_steps=2", f"init_adapter={shared / 'adapter'}", "learning_rate=5e-2"])
    assert {p: p.stat().st_mtime_ns
            for p in (ckpt / "adapters").rglob("adapter_model.safetensors")} == made
    with pytest.raises(UserError, match=r"init_adapter=.*not this LoRA: r 2 \(wanted 4\)"):
        train("per-repo-lora", bench, "static", tmp_path / "bad", model=str(tiny),
              options=["r=4", "alpha=4", "max_steps=1", f"init_adapter={shared}"], progress=False)
    with pytest.raises(UserError, match="no PEFT adapter there"):
        train("per-repo-lora", bench, "static", tmp_path / "bad2", model=str(tiny),
              options=["max_steps=1", f"init_adapter={tmp_path}"], progress=False)

    plain = evaluate(bench, "static", "test_in_repo", "per-repo-lora", str(tiny),
                     tmp_path / "run", checkpoint=ckpt, progress=False, scoring="teacher-forced")
    audited = evaluate(bench, "static", "test_in_repo", "per-repo-lora", str(tiny),
                       tmp_path / "audit", checkpoint=ckpt, progress=False,
                       scoring="teacher-forced", method_options=["audit=true"])
    assert plain.audit is None and audited.run_key == plain.run_key   # audit: not in the key
    assert audited.audit["modes"] == ["own", "other", "mean"]
    own = audited.audit["own"]["micro"]
    assert own == plain.scores["metrics"]["tf_em"]["micro"]
    other = [json.loads(x) for x in (tmp_path / "audit" / "samples-other.jsonl").read_text()
             .splitlines()[1:]]
    mine = [json.loads(x) for x in (tmp_path / "audit" / "samples.jsonl").read_text()
            .splitlines()[1:]]
    assert [s["task_id"] for s in other] == [s["task_id"] for s in mine]
    # the two repositories' adapters differ, so another's adapter scores the task otherwise
    assert any(a["tf_logprob"] != b["tf_logprob"] for a, b in zip(mine, other))
    # with two repositories the leave-one-out mean is the other one's adapter
    mean = [json.loads(x) for x in (tmp_path / "audit" / "samples-mean.jsonl").read_text()
            .splitlines()[1:]]
    assert [s["task_id"] for s in mean] == [s["task_id"] for s in other]
    assert [s["tf_logprob"] for s in mean] == pytest.approx([s["tf_logprob"] for s in other],
                                                            abs=1e-5)
    assert audited.audit["own_minus_mean"]["delta"] == audited.audit["own_minus_other"]["delta"]
    # mean_rank=1: with two repositories the exact mean is of rank 2, no more than a
    # truncated one's 1 + 2, so it is served exactly (error 0); own and other are cached
    low = evaluate(bench, "static", "test_in_repo", "per-repo-lora", str(tiny),
                   tmp_path / "low", checkpoint=ckpt, progress=False, scoring="teacher-forced",
                   method_options=["audit=true", "mean_rank=1"])
    assert low.run_key == plain.run_key and low.audit["mean_rank"] == 1
    assert low.audit["mean_max_relative_error"] == 0.0
    assert low.audit["own"] == audited.audit["own"] and low.audit["mean"] == audited.audit["mean"]
    assert "mean_rank" not in audited.audit


def test_a_larger_sample_of_the_same_repositories_reuses_the_audits_scores(tiny, tmp_path):
    """The audit's replacement (another repository's adapter) depends on the evaluated
    repositories, not on which of their tasks: a larger nested sample of the same
    repositories scores only its new tasks in every mode, into the same cache file."""
    from evaluators.models import cache_root
    many = {f"tests/test_t{i}.py": "".join(
        f"def test_{k}():\n    value = compute({k})\n    assert value == {k % 4 + 100}\n\n"
        for k in range(i * 8, i * 8 + 8)) for i in range(12)}
    bench = build_bench(tmp_path / "b", {**many, "pkg/core.py": "def compute(x):\n"
                                         "    return x % 4 + 100\n"}, [None, None], "a")
    ckpt = train("per-repo-lora", bench, "static", tmp_path / "ckpt", model=str(tiny),
                 options=["batch_size=2", "r=2", "alpha=4", "max_train_tasks_per_repo=4",
                          "max_steps=1", "learning_rate=5e-2"], progress=False)
    every = Benchmark(bench).tasks("static", "test_in_repo")
    small = Benchmark(bench).tasks("static", "test_in_repo", limit=2, sample="per_repo")
    assert len({t["repo_id"] for t in small}) == len({t["repo_id"] for t in every}) == 2
    assert len(every) > len(small)

    def audited(out, limit):
        return evaluate(bench, "static", "test_in_repo", "per-repo-lora", str(tiny),
                        tmp_path / out, checkpoint=ckpt, progress=False, limit=limit,
                        sample="per_repo", scoring="teacher-forced",
                        method_options=["audit=true"])
    first = audited("small", 2)
    files = lambda: sorted((cache_root() / "predictions").glob(f"{first.run_key}-other*.jsonl"))  # noqa: E731
    assert len(files()) == 1 and len(files()[0].read_text().splitlines()) == 2
    whole = audited("whole", None)
    assert whole.run_key == first.run_key and len(files()) == 1
    lines = [json.loads(x) for x in files()[0].read_text().splitlines()]
    assert sorted(x["task_id"] for x in lines) == sorted(t["task_id"] for t in every)
    # and the reused rows score as a fresh run of the larger sample would
    shutil.rmtree(cache_root() / "predictions")
    fresh = audited("fresh", None)
    assert fresh.audit["own_minus_other"] == whole.audit["own_minus_other"]


def test_a_run_on_a_few_repositories_trains_and_scores_those_and_serves_a_larger_run(tiny,
                                                                                   tmp_path):
    """max_train_repos=N trains the adapters of the first N repositories, --repos N scores
    the tasks of the same N; a later training of every repository reuses their adapters."""
    from repopeftbench.dataset import first_repos
    from repopeftbench.errors import UserError
    many = {f"tests/test_t{i}.py": "".join(
        f"def test_{k}():\n    value = compute({k})\n    assert value == {k % 4 + 100}\n\n"
        for k in range(i * 8, i * 8 + 8)) for i in range(12)}
    bench = build_bench(tmp_path / "b", {**many, "pkg/core.py": "def compute(x):\n"
                                         "    return x % 4 + 100\n"}, [None, None, None], "f")
    every = Benchmark(bench).tasks("static", "test_in_repo",
                                   columns=["test_file", "test_function"])
    repos = sorted({t["repo_id"] for t in every})
    assert len(repos) == 3
    one = first_repos(repos, 1)
    assert len(one) == 1 and one < first_repos(repos, 2) < first_repos(repos, 3) == set(repos)
    lora = ["batch_size=2", "r=2", "alpha=4", "max_train_tasks_per_repo=2", "max_steps=1",
            "learning_rate=5e-2"]
    few = train("per-repo-lora", bench, "static", tmp_path / "few", model=str(tiny),
                options=lora + ["max_train_repos=1"], progress=False)
    index = json.loads((few / "adapters.json").read_text())
    assert set(index) == one
    res = evaluate(bench, "static", "test_in_repo", "per-repo-lora", str(tiny), tmp_path / "run",
                   checkpoint=few, progress=False, scoring="teacher-forced", repos=1)
    scored = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text()
              .splitlines()[1:]]
    assert {s["repo_id"] for s in scored} == one and res.dataset.repos == 1
    assert len(scored) == sum(t["repo_id"] in one for t in every)
    with pytest.raises(UserError, match="has no adapter for"):   # the others have none
        evaluate(bench, "static", "test_in_repo", "per-repo-lora", str(tiny), tmp_path / "all",
                 checkpoint=few, progress=False, scoring="teacher-forced")
    whole = train("per-repo-lora", bench, "static", tmp_path / "whole", model=str(tiny),
                  options=lora, progress=False)
    assert set(json.loads((whole / "adapters.json").read_text())) == set(repos)
    assert json.loads((whole / "adapters.json").read_text())[min(one)] == index[min(one)]

    # the report's overlap of each test task with the checkpoint's own training tasks
    from evaluators.report import OVERLAPS, training_overlap
    overlap = training_overlap(bench, few)
    trained = Benchmark(bench).tasks("static", "train", columns=["test_file", "test_function"])
    mine = [t for t in trained if t["repo_id"] in one]
    assert len(mine) > 2            # max_train_tasks_per_repo=2 keeps 2 of them
    assert set(overlap) == {t["task_id"] for t in every}
    assert all(overlap[t["task_id"]] == OVERLAPS[2] for t in every if t["repo_id"] not in one)
    seen = [t for t in every if t["repo_id"] in one and overlap[t["task_id"]] != OVERLAPS[2]]
    from evaluators.budget import TrainOptions
    used = TrainOptions(max_train_tasks_per_repo=2, max_train_repos=1).training_tasks(trained)
    assert len(used) == 2
    pair = lambda t: (t["repo_id"], t["test_file"])  # noqa: E731
    assert {pair(t) for t in seen} == {pair(t) for t in used} & {pair(t) for t in every}
    assert {overlap[t["task_id"]] for t in every} - {OVERLAPS[2]}


def test_new_lora_options_keep_the_run_keys_of_earlier_runs():
    from evaluators.registry import RunContext, get_method, parse_options
    for name in ("shared-lora", "per-repo-lora", "code2lora-static", "fft"):
        cls = get_method(name)
        cfg = cls(RunContext(model_name="m"), parse_options(cls, [])).config()
        assert "init_adapter" not in cfg and "audit" not in cfg and "max_train_repos" not in cfg
    for name in ("shared-lora", "per-repo-lora"):
        cls = get_method(name)
        cfg = cls(RunContext(model_name="m"), parse_options(cls, ["init_adapter=x"])).config()
        assert cfg["init_adapter"] == "x"


@pytest.mark.parametrize("method", ["fft", "fft-rag"])
def test_full_fine_tuning_changes_every_weight_and_predicts_with_them(method, bench, tiny, tmp_path):
    from safetensors.torch import load_file

    opts = ["max_steps=2", "batch_size=4", "learning_rate=1e-2", "max_train_tasks_per_repo=4"]
    ckpt = train(method, bench, "static", tmp_path / "ckpt", model=str(tiny), options=opts,
                 progress=False)
    tuned = load_file(ckpt / method / "model" / "model.safetensors")
    base = load_file(tiny / "model.safetensors")
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert len(changed) >= len(base) - 1          # (a tied or unused weight may stay)
    assert not (ckpt / method / "trainer").exists()   # optimizer states removed
    res = evaluate(bench, "static", "test_cross_repo", method, str(tiny), tmp_path / "run",
                   checkpoint=ckpt, progress=False)
    assert res.scores["n_tasks"] > 0 and res.checkpoint == str(ckpt)


def test_target_only_loss_and_gradients_equal_the_full_path(tiny):
    """The LM head runs only where a target token is predicted: same loss and adapter
    gradients as the full-logits loss, and the head sees only those rows."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evaluators.training import CompletionCollator, target_losses
    tok = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False))
    examples = [encode_example(tok, f"x = {k}\nassert compute(x) == ", str(k % 4 + 100), 64)
                for k in range(4)]
    batch = CompletionCollator(tok.pad_token_id or 0)(examples)

    def full_loss():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2),
                                               batch["labels"][:, 1:], ignore_index=IGNORE,
                                               reduction="sum")
        return ce / (batch["labels"][:, 1:] != IGNORE).sum()

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    rows = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda m, i, o: rows.append(i[0].reshape(-1, i[0].shape[-1]).shape[0]))
    sums, counts = target_losses(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    fast = sums.sum() / counts.sum()
    hook.remove()
    assert rows == [int(counts.sum())]          # the head saw the target positions only
    slow = full_loss()
    assert torch.allclose(fast, slow, atol=1e-5, rtol=1e-5)
    g_fast, g_slow = grads(sums.sum() / counts.sum()), grads(full_loss())
    for name in g_slow:
        assert torch.allclose(g_fast[name], g_slow[name], atol=1e-5, rtol=1e-4), name


def test_top_layers_puts_adapters_on_the_top_layers_only(bench, tiny, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    opts = ["max_steps=1", "batch_size=4", "r=2", "alpha=4", "max_train_tasks_per_repo=4",
            "top_layers=1"]
    ckpt = train("shared-lora", bench, "static", tmp_path / "ckpt", model=str(tiny), options=opts,
                 progress=False)
    keys = load_file(str(ckpt / "adapter" / "adapter_model.safetensors")).keys()
    n_layers = AutoModelForCausalLM.from_pretrained(tiny).config.num_hidden_layers
    assert keys and all(f".layers.{n_layers - 1}." in k for k in keys)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), ckpt / "adapter")
    res = evaluate(bench, "static", "test_in_repo", "shared-lora", str(tiny), tmp_path / "run",
                   checkpoint=ckpt, progress=False, scoring="teacher-forced")
    assert res.scores["n_tasks"] > 0


def test_cached_lower_layers_give_the_loss_and_gradients_of_the_full_model(tiny, tmp_path):
    """top_layers: the inputs of the first adapted layer are cached once; training runs
    the layers above only, with the same loss and adapter gradients."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evaluators.lower_cache import LowerLayerCache
    from evaluators.training import CompletionCollator, target_losses
    tok = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny)
    top = base.config.num_hidden_layers - 1
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj",
                                                                               "down_proj"],
                                            layers_to_transform=[top], init_lora_weights=False))
    examples = [{**encode_example(tok, f"x = {k}\n" * (k + 1) + "assert compute(x) == ",
                                  str(k % 4 + 100), 64), "index": k} for k in range(4)]
    cache = LowerLayerCache(model, examples, top, "test", directory=tmp_path)
    assert cache.n_computed == 0                       # computed as batches ask for examples
    cache.batch(torch.tensor([2]), 8)
    assert cache.n_computed == 1
    again = LowerLayerCache(model, examples, top, "test", directory=tmp_path)   # reused
    assert again.paths == cache.paths and again.n_computed == 1
    # keyed by example: another list holding example 2 (per-repo LoRA's subset of shared
    # LoRA's tasks) finds it computed
    subset = LowerLayerCache(model, [examples[2], examples[0]], top, "test", directory=tmp_path)
    assert subset.done.tolist() == [True, False]
    batch = CompletionCollator(tok.pad_token_id or 0)(examples)
    # an example's states do not depend on which examples were computed before or with it
    other = LowerLayerCache(model, examples, top, "test", directory=tmp_path / "other")
    other.batch(torch.tensor([3, 1, 0, 2]), batch["input_ids"].shape[1])
    cache.batch(batch["index"], batch["input_ids"].shape[1])
    assert all(np.array_equal(other.states(i), cache.states(i)) for i in range(4))
    assert not list(tmp_path.rglob("*.tmp"))

    def run(cached: bool):
        model.zero_grad()
        hidden = cache.batch(batch["index"], batch["input_ids"].shape[1]) if cached else None
        sums, counts = target_losses(model, batch["input_ids"], batch["attention_mask"],
                                     batch["labels"], hidden, top)
        loss = sums.sum() / counts.sum()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                               if p.requires_grad}

    fast, g_fast = run(True)
    slow, g_slow = run(False)
    assert torch.allclose(fast, slow, atol=1e-5, rtol=1e-5)
    for name in g_slow:
        assert torch.allclose(g_fast[name], g_slow[name], atol=1e-5, rtol=1e-4), name


def test_training_twice_gives_the_same_adapter_bytes(bench, tiny, tmp_path):
    """Same data, options and seed: byte-identical adapters, whether the lower-layer cache
    is filled by the run (the first) or read from disk (the second)."""
    opts = ["max_steps=3", "batch_size=4", "r=2", "alpha=4", "max_train_tasks_per_repo=4",
            "top_layers=1", "epochs=2"]
    made = [train("shared-lora", bench, "static", tmp_path / f"ckpt{i}", model=str(tiny),
                  options=opts, progress=False) for i in range(2)]
    a, b = (ckpt / "adapter" / "adapter_model.safetensors" for ckpt in made)
    assert a.read_bytes() == b.read_bytes()


def test_the_per_repository_audits_truncated_mean_is_within_its_reported_error(tmp_path):
    """mean_rank=k: the mean of all the repositories' adapters truncated once, each
    leave-one-out mean (n mean_k - own) / (n - 1) of rank k + r; its update is within the
    reported relative error of the exact leave-one-out mean's, which is served instead
    where it is of no higher rank."""
    import torch
    from evaluators.lora.peft_format import lora_config_dict, mean_peft_adapter, save_peft_adapter
    from evaluators.registry import RunContext, get_method, parse_options
    g = torch.Generator().manual_seed(3)
    config = lora_config_dict("m", ["q_proj"], 2, 4.0, layers=(0,))
    keys = ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
    repos = [f"r{i}" for i in range(5)]
    made = {r: (config, {keys[0]: torch.randn(2, 9, generator=g),
                         keys[1]: torch.randn(8, 2, generator=g)}) for r in repos}
    for r, (c, t) in made.items():
        save_peft_adapter(tmp_path / r, c, t)

    def update(w):
        return w.config["lora_alpha"] / w.config["r"] * w.tensors[keys[1]] @ w.tensors[keys[0]]

    cls = get_method("per-repo-lora")
    served = {}
    for rank in (3, 8):
        m = cls(RunContext(model_name="m"), parse_options(cls, ["audit=true", f"mean_rank={rank}"]))
        m._adapters = {r: tmp_path / r for r in repos}
        m.prepare([{"repo_id": r, "task_id": r} for r in repos])
        m.set_audit_mode("mean")
        served[rank] = {r: m.adapter({"repo_id": r, "task_id": r}) for r in repos}
        info = m.audit_info()
        # 4 x 2 = 8 > 3 + 2: truncated; at 8, no more than 8 + 2: exact
        assert served[rank]["r0"].config["r"] == {3: 5, 8: 8}[rank] and info["mean_rank"] == rank
        for r in repos:
            c, t = mean_peft_adapter([made[o] for o in repos if o != r])
            want = c["lora_alpha"] / c["r"] * t[keys[1]] @ t[keys[0]]
            off = float(torch.linalg.norm(update(served[rank][r]) - want) / torch.linalg.norm(want))
            assert off <= info["mean_max_relative_error"] + 1e-6
        assert (info["mean_max_relative_error"] > 0) == (rank < 8)
    assert served[3]["r1"].name != served[8]["r1"].name
