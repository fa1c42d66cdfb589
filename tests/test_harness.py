"""Harness end to end with a tiny random Qwen2 model: generation protocol, runs, cache,
submissions, sanity methods, leaderboard (rendered in headless Chromium when present)."""
from __future__ import annotations

from dataclasses import replace

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from evaluators.backends.base import GenerationConfig  # noqa: E402
from evaluators.backends.hf import HFGenerator, HFOptions, reference_generate  # noqa: E402
from evaluators.harness import evaluate, score_predictions  # noqa: E402
from evaluators.registry import Method, get_method, register_method  # noqa: E402
from evaluators.submission import SubmissionError  # noqa: E402
from repopeftbench.cli import main  # noqa: E402
from repopeftbench.errors import UserError  # noqa: E402

from conftest import build_bench, make_tiny_model  # noqa: E402

TESTS = {
    f"tests/test_m{i}.py": "import pytest\n\n\n" + "".join(
        f"def test_{k}():\n    value = compute({k})\n    assert value == {k * 7 + 100}\n"
        f"    assert str(value) == '{k}'\n\n" for k in range(i * 6, i * 6 + 6))
    for i in range(4)}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"), list(TESTS.values()))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    files = {**TESTS, "pkg/core.py": "def compute(x):\n    return x\n"}
    return build_bench(tmp_path_factory.mktemp("bench"), files, [None, "cr_test", "cr_test"], "h")


def test_generation_protocol(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    gen = HFGenerator(model, tok, GenerationConfig(max_new_tokens=12, max_input_tokens=16),
                      progress=False, options=HFOptions(batch_size=4))
    assert gen.banned == [[tok.convert_tokens_to_ids("<fim_middle>")]]
    long_ids = gen.encode(TESTS["tests/test_m0.py"])
    assert len(long_ids) == 16 and long_ids == tok(TESTS["tests/test_m0.py"])["input_ids"][-16:]
    prompts = ["def test_1():\n    assert value == ", "import pytest\n", "x = compute(3)\nassert x == ",
               "def f():\n    return 1\n", "a"]
    batched = gen.generate(prompts)
    one_by_one = [gen.generate([p])[0] for p in prompts]
    assert batched == one_by_one  # batched decoding over shared prefixes changes nothing
    flat = HFGenerator(model, tok, gen.config, progress=False,
                       options=replace(gen.options, reuse_prefix=False))
    assert flat.generate(prompts) == one_by_one  # nor do left padding and length batching
    assert batched == reference_generate(gen, prompts)  # same as model.generate per prompt
    # one at a time, prompts sharing a prefix reuse its key/value cache: same predictions
    one = HFGenerator(model, tok, GenerationConfig(max_new_tokens=12, max_input_tokens=64),
                      progress=False, options=HFOptions(batch_size=1, min_shared_tokens=2))
    source = TESTS["tests/test_m0.py"] + TESTS["tests/test_m1.py"]
    cuts = [source[:k] for k in range(20, len(source), 37)] + ["x = compute(3)\nassert x == "]
    assert one.generate(cuts) == reference_generate(one, cuts)
    for rows in (1, 3):     # encoded one by one, decoded in batches of `rows` prompts
        other = HFGenerator(model, tok, one.config, progress=False,
                            options=replace(one.options, decode_batch_size=rows))
        assert other.generate(cuts) == reference_generate(one, cuts)
    calls, graded = [], []
    model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].shape),
                                    with_kwargs=True)
    model.register_forward_pre_hook(lambda m, a: graded.append(torch.is_grad_enabled()))
    one.generate(cuts[:3])
    prefill = [shape[1] for shape in calls if shape[1] > 1]
    assert sum(prefill) < sum(len(one.encode(c)) for c in cuts[:3])   # shared tokens computed once
    assert max(shape[0] for shape in calls) == 3                      # the 3 decoded together
    # the same file cut before each expected value, as static tasks are: a run of prompts
    # that are prefixes of the last one but for a short tail, encoded in one pass
    asserts = [source[:m.end()] for m in re.finditer("== ", source)]
    for tail in (1, 4, 16):
        other = HFGenerator(model, tok, replace(one.config, max_input_tokens=4096),
                            progress=False, options=replace(one.options, max_tail_tokens=tail))
        calls.clear()
        mine = other.generate(asserts)
        if tail == 16:      # one pass for the shared text, one per batch for the tails
            assert len([s for s in calls if s[1] > 1]) < len(asserts) / 2
        assert mine == reference_generate(other, asserts)
    assert graded and not any(graded)   # no autograd graph kept (it held 1.5 GB per prompt)
    newline = set(gen.newline_ids.tolist())
    for ids in gen.generate_ids([gen.encode(p) for p in prompts[:1]]) + [
            gen.generate_ids([gen.encode(p)])[0] for p in prompts]:
        assert len(ids) <= 12
        assert all(i not in newline for i in ids[:-1])  # generation stops at the line's end


def test_gold_scores_100_and_empty_0(bench, tmp_path):
    gold = evaluate(bench, "static", "test_cross_repo", "gold", "unused", tmp_path / "gold", progress=False)
    empty = evaluate(bench, "static", "test_cross_repo", "empty", "unused", tmp_path / "empty", progress=False)
    for metric in ("em", "paper_em", "strict_em", "edit_sim"):
        assert gold.scores["metrics"][metric]["micro"] == 100.0
        assert gold.scores["metrics"][metric]["macro"] == 100.0
        assert empty.scores["metrics"][metric]["micro"] == 0.0
    assert gold.scores["metrics"]["em"]["micro_ci"] == [100.0, 100.0]
    assert gold.scores["n_repos"] == 2
    per_repo = json.loads((tmp_path / "gold/results.json").read_text())["scores"]["per_repo"]
    assert sorted(per_repo) == ["h/r1", "h/r2"]
    assert all(r["em"] == 100.0 and r["n"] > 0 for r in per_repo.values())
    assert sum(r["n"] for r in per_repo.values()) == gold.scores["n_tasks"]
    rescored = score_predictions(bench, "static", "test_cross_repo", tmp_path / "gold/predictions.jsonl")
    assert rescored.scores["metrics"]["em"]["micro"] == 100.0


def test_pretrained_run_caches_and_resumes(bench, tiny_model, tmp_path, capsys):
    args = ["evaluate", "--dataset", str(bench), "--split", "test_cross_repo", "--method", "pretrained",
            "--model", str(tiny_model), "--out", str(tmp_path / "run"), "--limit", "5", "--no-progress",
            "--max-new-tokens", "8"]
    assert main(args) == 0
    first = json.loads((tmp_path / "run/results.json").read_text())
    assert first["n_predicted_now"] == 5 and first["scores"]["n_tasks"] == 5
    assert first["model"]["revision"].startswith("sha256:") and first["packages"]["torch"]
    lines = (tmp_path / "run/predictions.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["split"] == "test_cross_repo" and len(lines) == 6
    assert set(json.loads(lines[1])) == {"task_id", "raw", "prediction"}
    args[args.index("5")] = "8"
    assert main(args) == 0  # a larger sample reuses the 5 cached predictions
    second = json.loads((tmp_path / "run/results.json").read_text())
    assert second["n_predicted_now"] == 3
    assert "| em |" in capsys.readouterr().out


def _write_submission(path: Path, header: dict, rows: list) -> Path:
    path.write_text("\n".join([json.dumps(header)] + [r if isinstance(r, str) else json.dumps(r)
                                                      for r in rows]) + "\n")
    return path


def test_malformed_submissions_name_each_line(bench, tmp_path):
    from repopeftbench.dataset import Benchmark
    b = Benchmark(bench)
    ids = [t["task_id"] for t in b.tasks("static", "test_cross_repo")]
    header = {"dataset_sha256": b.sha256, "config": "static", "split": "test_cross_repo"}
    ok = _write_submission(tmp_path / "ok.jsonl", header, [{"task_id": i, "prediction": "x"} for i in ids])
    assert score_predictions(bench, "static", "test_cross_repo", ok).scores["n_tasks"] == len(ids)
    bad = _write_submission(tmp_path / "bad.jsonl", {**header, "dataset_sha256": "0" * 64}, [
        {"task_id": ids[0], "prediction": "x"},
        {"task_id": ids[0], "prediction": "y"},
        {"task_id": "nope", "prediction": "x"},
        "{not json",
        {"task_id": ids[1], "prediction": 3},
        {"task_id": 7, "prediction": "x"},
        [1, 2],
    ] + [{"task_id": i, "prediction": "x"} for i in ids[2:-1]])
    with pytest.raises(SubmissionError) as err:
        score_predictions(bench, "static", "test_cross_repo", bad)
    msg = str(err.value)
    assert f"{bad}:1: dataset_sha256 '{'0' * 64}' does not match" in msg
    assert f"{bad}:3: duplicate task_id '{ids[0]}' (first on line 2)" in msg
    assert f"{bad}:4: unknown task_id 'nope'" in msg
    assert f"{bad}:5: not valid JSON" in msg
    assert f"{bad}:6: prediction must be a string, got int" in msg
    assert f"{bad}:7: task_id must be a string, got int" in msg
    assert f"{bad}:8: a JSON object is expected" in msg
    assert "2 task(s) have no prediction" in msg
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SubmissionError, match="empty file"):
        score_predictions(bench, "static", "test_cross_repo", empty)
    assert main(["score", "--dataset", str(bench), "--split", "test_cross_repo",
                 "--predictions", str(bad)]) == 2


def test_custom_method_registers_like_a_plugin(bench, tmp_path):
    @register_method("shout")
    class Shout(Method):
        uses_model = False

        def predict(self, repo_id, tasks):
            return [t["target"] if t["target_type"] == "numeric" else "nope" for t in tasks]

    assert get_method("shout") is Shout and get_method("pretrained").name == "pretrained"
    res = evaluate(bench, "static", "test_cross_repo", "shout", "-", tmp_path / "s", progress=False)
    assert 0 < res.scores["metrics"]["em"]["micro"] < 100
    with pytest.raises(UserError, match="unknown method 'nope'"):
        get_method("nope")


def test_leaderboard_and_paired_comparison(bench, tmp_path, capsys):
    runs = tmp_path / "runs"
    for m in ("gold", "empty"):
        evaluate(bench, "static", "test_cross_repo", m, "-", runs / m, progress=False)
    evaluate(bench, "static", "train", "gold", "-", runs / "gold_train", progress=False)
    assert main(["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "lb")]) == 0
    md = (tmp_path / "lb/leaderboard.md").read_text()
    sanity = md.split("## Sanity checks")[1]           # gold and empty are apart from methods
    assert "| gold | static/test_cross_repo |" in sanity and "| empty |" in sanity
    assert "| gold |" not in md.split("## Sanity checks")[0]
    page = (tmp_path / "lb/index.html").read_text()
    assert page.count("<tr>") == 4 and 'id="board"' in page
    assert (tmp_path / "lb/leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compare", str(runs / "empty"), str(runs / "gold"), "--dataset", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "+100.00 points of em" in out
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (CI installs the Debian package)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'chrome'}"]
    url = (tmp_path / "lb/index.html").as_uri()
    shot = tmp_path / "lb/screenshot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1100,700", url],
                   check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 5000
    dom = subprocess.run([chromium, *flags, "--dump-dom", url + "#sort=6"], check=True,
                         capture_output=True, timeout=120, text=True).stdout
    # sorted by em micro, descending (first click): empty's 0.0 row comes after gold's 100.0 rows
    assert dom.index(">empty (sanity check)<") > dom.rindex(">gold (sanity check)<") and 'data-dir="desc"' in dom


@register_method("numbers-test")
class NumbersOnly(Method):
    """Right on numeric targets only."""
    uses_model = False

    def predict(self, repo_id, tasks):
        return [t["target"] if t["target_type"] == "numeric" else "nope" for t in tasks]


def test_leaderboard_is_honest_about_samples_and_small_cis(bench, tmp_path):
    from evaluators.leaderboard import to_markdown
    runs = tmp_path / "runs"
    evaluate(bench, "static", "test_cross_repo", "empty", "-", runs / "sanity", progress=False)
    res = evaluate(bench, "static", "test_cross_repo", "numbers-test", "-", runs / "full", progress=False)
    evaluate(bench, "static", "test_cross_repo", "numbers-test", "-", runs / "sample", limit=5,
             progress=False)
    # a run with a smaller input budget (the demo's) is ranked on a board of its own
    data = json.loads((runs / "full/results.json").read_text())
    data["generation"] = {**(data.get("generation") or {}), "max_input_tokens": 1024}
    (runs / "budget").mkdir()
    (runs / "budget/results.json").write_text(json.dumps(data))
    assert main(["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "lb")]) == 0
    md = (tmp_path / "lb/leaderboard.md").read_text()
    full, sample = md.index("## static/test_cross_repo, all tasks\n"), md.index(
        "## static/test_cross_repo, fixed sample of 5 tasks (--limit): not ranked")
    assert "## static/test_cross_repo, all tasks, inputs cut to 1024 tokens (the protocol's " \
           "budget is 4096): not ranked against other budgets" in md
    assert md.count("| 1 | numbers-test |") == 3             # each ranked on its own board
    assert "(no CI: 2 repos)" in md and "[" not in md.split("| 1 | numbers-test |")[1].split("\n")[0]
    assert "Per repository (em, %, tasks)" in md[full:sample]
    n = res.scores["per_repo"]["h/r1"]["n"]
    assert f"| h/r1 | {res.scores['per_repo']['h/r1']['em']:.1f} ({n}) |" in md
    from evaluators.leaderboard import display_model
    assert "de-quantised from 4-bit" in display_model("smollm2")
    assert to_markdown([]).startswith("# RepoPeftBench leaderboard")


def test_threads_follow_the_cores_the_process_may_use(monkeypatch):
    import os

    from evaluators.models import configure_threads, usable_cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert usable_cores() == 1 and configure_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    if hasattr(os, "sched_getaffinity"):
        assert usable_cores() == len(os.sched_getaffinity(0))
    configure_threads()


def test_per_repo_sample_covers_repositories_and_is_nested(bench):
    from repopeftbench.dataset import Benchmark
    b = Benchmark(bench)
    rows = b.tasks("static", "test_cross_repo")
    repos = sorted({r["repo_id"] for r in rows})
    assert len(repos) >= 2 and len(rows) > len(repos)
    dealt = b.tasks("static", "test_cross_repo", limit=len(repos), sample="per_repo")
    assert sorted(r["repo_id"] for r in dealt) == repos          # one task from each
    bigger = b.tasks("static", "test_cross_repo", limit=len(repos) + 1, sample="per_repo")
    assert {r["task_id"] for r in dealt} < {r["task_id"] for r in bigger}
    assert dealt == b.tasks("static", "test_cross_repo", limit=len(repos), sample="per_repo")
    with pytest.raises(ValueError, match="unknown sample"):
        b.tasks("static", "test_cross_repo", limit=2, sample="random")
    res = evaluate(bench, "static", "test_cross_repo", "gold", "-", Path(b.dir).parent / "dealt",
                   limit=len(repos), sample="per_repo", progress=False)
    assert res.dataset.sample == "per_repo" and res.scores["n_repos"] == len(repos)


def test_hf_scheduling_is_the_backends_option_and_run_keys_stay():
    from evaluators.backends.base import parse_backend_options
    from evaluators.backends.hf import HFOptions
    from repopeftbench.errors import UserError
    # the protocol as the run key records it: what it was when scheduling lived there
    assert GenerationConfig().to_dict() == {
        "max_new_tokens": 64, "max_input_tokens": 4096, "batch_size": None,
        "stop_at_newline": True, "reuse_prefix": True, "min_shared_tokens": 8,
        "prompt_encoding": "bos+left-truncated"}
    o = parse_backend_options(HFOptions, ["batch_size=3", "reuse_prefix=false"], "hf")
    assert (o.batch_size, o.reuse_prefix, o.min_shared_tokens) == (3, False, 8)
    assert parse_backend_options(HFOptions, {"batch_size": None}, "hf").batch_size is None
    with pytest.raises(UserError, match="unknown hf backend option 'max_loras'"):
        parse_backend_options(HFOptions, ["max_loras=2"], "hf")
    with pytest.raises(UserError, match="decode_batch_size='x': not a valid int"):
        parse_backend_options(HFOptions, ["decode_batch_size=x"], "hf")


def test_batch_size_flag_is_the_hf_backends(bench, tiny_model, tmp_path, capsys):
    from repopeftbench.cli import main
    args = ["evaluate", "--method", "pretrained", "--dataset", str(bench), "--split",
            "test_in_repo", "--model", str(tiny_model), "--limit", "3", "--no-progress",
            "--max-new-tokens", "4"]
    assert main(args + ["--out", str(tmp_path / "a"), "--batch-size", "2"]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--backend-option", "batch_size=1"]) == 0
    a = json.loads((tmp_path / "a/results.json").read_text())
    b = json.loads((tmp_path / "b/results.json").read_text())
    assert a["run_key"] == b["run_key"]            # a schedule is not part of the key
    assert a["backend"]["name"] == "hf" and a["backend"]["options"]["batch_size"] == 2
    assert b["backend"]["options"] == {**a["backend"]["options"], "batch_size": 1}
    assert main(args + ["--out", str(tmp_path / "c"), "--batch-size", "2",
                        "--backend", "vllm"]) == 2
    assert "--batch-size is the hf backend's option" in capsys.readouterr().err


def test_a_pending_chunk_holds_a_bounded_size_of_adapters(monkeypatch, tmp_path):
    """An audit's leave-one-out means can be hundreds of MB each (a per-layer head's is of
    full rank): a chunk of pending tasks is cut once its distinct in-memory adapters reach
    PENDING_ADAPTER_BYTES, not only at GENERATE_CHUNK tasks (the Qwen2.5-Coder audit of
    66 repositories was killed for memory at 24 GB)."""
    from types import SimpleNamespace

    import evaluators.harness as harness
    from evaluators.backends.base import AdapterWeights, Request, adapter_nbytes

    mib = 1 << 20
    adapters = {r: AdapterWeights(f"a-{r}", {}, {"w": torch.zeros(mib // 4)}) for r in "abcd"}
    assert adapter_nbytes(adapters["a"]) == mib and adapter_nbytes(None) == 0
    assert adapter_nbytes(str(tmp_path)) == 0              # a directory is read when used
    w = adapters["a"].tensors["w"]                          # one tensor shared by two modules
    assert adapter_nbytes(AdapterWeights("s", {}, {"x": w, "y": w})) == mib
    chunks: list[set[str]] = []

    class Backend:
        def score_configurations(self, configs, targets, desc="", on_result=None):
            chunks.append({req.adapter.name for req in configs[0]})
            for i in range(len(targets)):
                on_result(0, i, SimpleNamespace(metrics=lambda: {"tf_em": 0.0}, n_tokens=1))

    method = SimpleNamespace(
        predict=lambda repo, group: [Request("p", adapters[repo]) for _ in group],
        context=SimpleNamespace(backend=lambda: Backend()), name="m")
    by_repo = {r: [{"task_id": f"{r}{i}", "target": "x"} for i in range(3)] for r in "abcd"}
    monkeypatch.setattr(harness, "PENDING_ADAPTER_BYTES", 2 * mib)
    have: dict = {}
    harness._predict_all([(method, None, tmp_path / "c.jsonl", have)], by_repo, "m",
                         scoring="teacher-forced")
    assert chunks == [{"a-a", "a-b"}, {"a-c", "a-d"}]      # two repositories' adapters each
    assert sorted(have) == sorted(t["task_id"] for g in by_repo.values() for t in g)
    chunks.clear()
    monkeypatch.setattr(harness, "PENDING_ADAPTER_BYTES", 1 << 40)
    harness._predict_all([(method, None, tmp_path / "d.jsonl", {})], by_repo, "m",
                         scoring="teacher-forced")
    assert chunks == [{"a-a", "a-b", "a-c", "a-d"}]        # by count alone: one chunk
