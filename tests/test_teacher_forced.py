"""Teacher-forced scoring: equal to a naive per-task forward pass whatever the sharing and
the adapters, tf_em agrees with greedy decoding, and the harness, samples and compare
carry the metrics."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evaluators.backends.base import (GenerationConfig, Request, encode_prompt,  # noqa: E402
                                      encode_target)
from evaluators.backends.hf import HFBackend, HFGenerator, HFOptions  # noqa: E402
from evaluators.harness import compare_runs, evaluate  # noqa: E402
from evaluators.training import encode_example  # noqa: E402

from conftest import build_bench, make_peft_adapter, make_tiny_model  # noqa: E402

FILE = ("import pytest\n\n\n" + "".join(
    f"def test_{k}():\n    value = compute({k})\n    assert value == {k * 7 + 100}\n"
    f"    assert str(value) == '{k}'\n\n" for k in range(8)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), [FILE])


def _load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _tasks() -> list[tuple[str, str]]:
    """(prompt, target): the same file cut before each expected value, plus strays."""
    out = []
    for k in range(8):
        for target in (str(k * 7 + 100), f"'{k}'"):
            cut = FILE.index(target, FILE.index(f"def test_{k}()"))
            out.append((FILE[:cut], target))
    out += [("x = 1\nassert x == ", "1"), ("def f():\n    return ", "None")]
    return out


def _naive(model, gen: HFGenerator, prompt: str, target: str, adapter_model=None):
    m = adapter_model or model
    p, t = gen.encode(prompt), encode_target(gen.tokenizer, target)
    with torch.no_grad():
        logits = m(input_ids=torch.tensor([p + t])).logits[0].float()
    banned = [b[0] for b in gen.banned]
    logits[:, banned] = float("-inf")
    logp = torch.log_softmax(logits, -1)
    rows = range(len(p) - 1, len(p) + len(t) - 1)
    return sum(logp[r, tok].item() for r, tok in zip(rows, t)), \
        sum(int(logits[r].argmax() == tok) for r, tok in zip(rows, t))


@pytest.mark.parametrize("min_shared", [2, 10_000])
def test_scores_equal_a_naive_forward_pass_per_task(tiny, min_shared):
    model, tok = _load(tiny)
    backend = HFBackend(model, tok, GenerationConfig(max_input_tokens=60), progress=False,
                        options=HFOptions(min_shared_tokens=min_shared))
    tasks = _tasks()
    got = backend.score_targets([Request(p) for p, _ in tasks], [t for _, t in tasks])
    for (prompt, target), score in zip(tasks, got):
        lp, correct = _naive(model, backend.generator, prompt, target)
        assert math.isclose(score.logprob, lp, rel_tol=1e-4, abs_tol=1e-4)
        assert score.n_correct == correct and score.n_tokens == len(encode_target(tok, target))


def test_tf_em_agrees_with_greedy_decoding(tiny):
    """A target that greedy decoding produces (its first k tokens, where generation stops at
    k = max_new_tokens) is tf_em; one token off is not. (A random tiny model rarely ends a
    line, so the stop rule is held by ``test_clean_stop_rule``.)"""
    model, tok = _load(tiny)
    checked = 0
    for p in [p for p, _ in _tasks()]:
        free = HFBackend(model, tok, GenerationConfig(max_input_tokens=80, max_new_tokens=12),
                         progress=False)
        ids = free.generator.generate_ids([free.generator.encode(p)])[0]
        for k in range(1, len(ids)):
            line = tok.decode(ids[:k])
            if encode_target(tok, line) != ids[:k] or "\n" in line:
                continue                   # re-tokenisation: teacher forcing feeds other ids
            short = HFBackend(model, tok, GenerationConfig(max_input_tokens=80, max_new_tokens=k),
                              progress=False)
            [s] = short.score_targets([Request(p)], [line])
            assert s.em and s.n_correct == k, (p[-30:], line)
            longer = HFBackend(model, tok, GenerationConfig(max_input_tokens=80, max_new_tokens=k + 1),
                               progress=False)
            [t] = longer.score_targets([Request(p)], [line])
            assert not t.em            # greedy goes on with ids[k], which is no line break
            checked += 1
    assert checked >= 5


def test_clean_stop_rule():
    from evaluators.backends.base import is_clean_stop
    assert is_clean_stop("\n") and is_clean_stop("  \n\n") and is_clean_stop("\n    ")
    assert not is_clean_stop(")\n") and not is_clean_stop("x") and not is_clean_stop(" ")


def test_adapters_per_row_score_like_the_merged_model(tiny, tmp_path):
    from peft import PeftModel
    model, tok = _load(tiny)
    adapter = make_peft_adapter(tiny, tmp_path / "a", seed=1)
    backend = HFBackend(model, tok, GenerationConfig(max_input_tokens=60), progress=False,
                        options=HFOptions(min_shared_tokens=2))
    tasks = _tasks()
    reqs = [Request(p, adapter if i % 2 else None) for i, (p, _) in enumerate(tasks)]
    got = backend.score_targets(reqs, [t for _, t in tasks])
    base, _ = _load(tiny)
    peft = PeftModel.from_pretrained(base, str(adapter)).eval()
    for i, ((prompt, target), score) in enumerate(zip(tasks, got)):
        lp, _ = _naive(model, backend.generator, prompt, target, peft if i % 2 else None)
        assert math.isclose(score.logprob, lp, rel_tol=1e-4, abs_tol=1e-4), i


def test_training_and_evaluation_encode_the_prompt_alike(tiny):
    """The BOS confound: training prepended it, evaluation (add_special_tokens=True) did not
    for tokenizers that do not add it themselves."""
    _, tok = _load(tiny)
    if tok.bos_token_id is None:
        tok.bos_token = tok.eos_token
    prompt, target = _tasks()[3]
    ex = encode_example(tok, prompt, target, max_seq_len=40)
    n_prompt = ex["labels"].index(next(x for x in ex["labels"] if x != -100))
    gen = HFGenerator(_load(tiny)[0], tok, GenerationConfig(max_input_tokens=n_prompt), progress=False)
    assert ex["input_ids"][:n_prompt] == gen.encode(prompt) == encode_prompt(tok, prompt, n_prompt)
    assert ex["input_ids"][0] == tok.bos_token_id


def test_harness_teacher_forced_run_samples_and_compare(tiny, tmp_path):
    files = {"tests/test_m.py": FILE, "pkg/core.py": "def compute(x):\n    return x\n"}
    bench = build_bench(tmp_path, files, ["cr_test", "cr_test"], "tf")
    gen_cfg = GenerationConfig(max_new_tokens=8, max_input_tokens=64)
    tf = evaluate(bench, "static", "test_cross_repo", "pretrained", str(tiny), tmp_path / "tf",
                  generation=gen_cfg, progress=False, scoring="teacher-forced")
    assert tf.scoring == "teacher-forced" and set(tf.scores["metrics"]) == {
        "tf_em", "tf_token_acc", "tf_logprob"}
    assert tf.scores["metrics"]["tf_logprob"]["micro"] < 0
    lines = (tmp_path / "tf" / "samples.jsonl").read_text().splitlines()
    header, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["scoring"] == "teacher-forced" and len(rows) == tf.scores["n_tasks"]
    assert {"task_id", "repo_id", "assertion_type", "target_type", "knowledge_source",
            "tf_em", "tf_logprob"} <= set(rows[0])
    assert not (tmp_path / "tf" / "predictions.jsonl").exists()
    again = evaluate(bench, "static", "test_cross_repo", "pretrained", str(tiny), tmp_path / "tf2",
                     generation=gen_cfg, progress=False, scoring="teacher-forced")
    assert again.n_predicted_now == 0           # cached per task
    cmp = compare_runs(tmp_path / "tf", tmp_path / "tf2", bench, metric="tf_logprob")
    assert cmp["delta"] == 0 and cmp["mde"] >= 0 and "sd_per_task" in cmp
    labels = {r["knowledge_source"] for r in rows}
    for label in labels:                      # the paired difference on one label's tasks
        one = compare_runs(tmp_path / "tf", tmp_path / "tf2", bench, metric="tf_logprob",
                           knowledge_source=label)
        assert one["n_tasks"] == sum(r["knowledge_source"] == label for r in rows)
    with pytest.raises(Exception, match="no task labelled"):
        compare_runs(tmp_path / "tf", tmp_path / "tf2", bench, knowledge_source="nowhere")
    gen = evaluate(bench, "static", "test_cross_repo", "pretrained", str(tiny), tmp_path / "gen",
                   generation=gen_cfg, progress=False)
    assert "em" in gen.scores["metrics"] and (tmp_path / "gen" / "samples.jsonl").exists()
    with pytest.raises(Exception, match="no 'tf_em' scores"):
        compare_runs(tmp_path / "gen", tmp_path / "tf", bench, metric="tf_em")
    from evaluators.leaderboard import to_markdown, write_leaderboard
    runs = tmp_path / "runs"
    for name in ("tf", "gen"):
        (runs / name).mkdir(parents=True)
        for f in (tmp_path / name).iterdir():
            if f.is_file():
                (runs / name / f.name).write_bytes(f.read_bytes())
    entries, _ = write_leaderboard(runs, tmp_path / "board")
    md = to_markdown(entries)
    assert "tf_em (teacher-forced)" in md and "teacher-forced (tf_em is strict greedy" in md
    assert "## static/test_cross_repo" in md


def test_audit_configurations_scored_together_equal_each_alone(tiny, tmp_path):
    """Own, mean, shuffled and no adapter on the same tasks, scored together with the
    lower layer run once for all (adapters on the top layer only), equal each configuration
    scored alone and a merged PEFT model per task; with an adapter on every layer among
    them, nothing is shared and the scores are still equal."""
    from peft import PeftModel

    from evaluators.backends.teacher_forcing import shared_lower_layers
    from evaluators.lora.model import LoraAdapter
    model, tok = _load(tiny)
    top = [make_peft_adapter(tiny, tmp_path / f"top{s}", seed=s, layers=[1]) for s in (1, 2, 3)]
    every = make_peft_adapter(tiny, tmp_path / "every", seed=4)
    assert shared_lower_layers(model, [LoraAdapter.load(a) for a in top]) == 1
    assert shared_lower_layers(model, [LoraAdapter.load(top[0]), LoraAdapter.load(every)]) == 0
    tasks = _tasks()
    targets = [t for _, t in tasks]
    for pool in (top, top[:2] + [every]):
        configs = [[Request(p, pool[(i + c) % 3] if c < 3 else None) for i, (p, _) in enumerate(tasks)]
                   for c in range(4)]          # c = 3: the base model
        backend = HFBackend(model, tok, GenerationConfig(max_input_tokens=60), progress=False,
                            options=HFOptions(min_shared_tokens=2))
        seen = []
        together = backend.score_configurations(configs, targets,
                                                on_result=lambda c, i, s: seen.append((c, i)))
        assert sorted(seen) == [(c, i) for c in range(4) for i in range(len(tasks))]
        for c, requests in enumerate(configs):
            alone = HFBackend(model, tok, GenerationConfig(max_input_tokens=60), progress=False,
                              options=HFOptions(min_shared_tokens=2)).score_targets(requests, targets)
            for i, (a, b) in enumerate(zip(together[c], alone)):
                assert math.isclose(a.logprob, b.logprob, rel_tol=1e-5, abs_tol=1e-5), (c, i)
                assert (a.n_correct, a.em) == (b.n_correct, b.em)
        for i in (0, 5, 16):                   # spot checks against PEFT's merged model
            adapter = pool[(i + 1) % 3]
            peft = PeftModel.from_pretrained(_load(tiny)[0], str(adapter)).eval()
            lp, _ = _naive(model, backend.generator, tasks[i][0], tasks[i][1], peft)
            assert math.isclose(together[1][i].logprob, lp, rel_tol=1e-4, abs_tol=1e-4)


def test_configurations_with_other_prompts_are_scored_each_alone(tiny):
    """Configurations that change the prompt (examples put before it) share no work, and
    each is scored as it would be alone."""
    model, tok = _load(tiny)
    backend = HFBackend(model, tok, GenerationConfig(max_input_tokens=60), progress=False)
    tasks = _tasks()[:6]
    configs = [[Request(p) for p, _ in tasks], [Request("x = 1\n" + p) for p, _ in tasks]]
    targets = [t for _, t in tasks]
    got = backend.score_configurations(configs, targets)
    for c in range(2):
        alone = backend.score_targets(configs[c], targets)
        assert [s.logprob for s in got[c]] == pytest.approx([s.logprob for s in alone], abs=1e-5)
    assert got[0][0].logprob != pytest.approx(got[1][0].logprob, abs=1e-5)
