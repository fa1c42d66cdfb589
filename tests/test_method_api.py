"""The method API: typed options, train once then --checkpoint, adapters per request,
and one-line errors for bad models, devices and splits."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from evaluators.backends.base import GenerationConfig  # noqa: E402
from evaluators.backends.hf import HFGenerator, HFOptions, reference_generate  # noqa: E402
from evaluators.harness import evaluate  # noqa: E402
from evaluators.registry import Method, parse_options, register_method  # noqa: E402
from repopeftbench.cli import main  # noqa: E402
from repopeftbench.errors import UserError  # noqa: E402

from conftest import build_bench, make_peft_adapter, make_tiny_model  # noqa: E402

TESTS = {f"tests/test_m{i}.py": "".join(
    f"def test_{k}():\n    value = compute({k})\n    assert value == {k % 3 + 100}\n\n"
    for k in range(i * 8, i * 8 + 8)) for i in range(3)}


@dataclass
class MemoOptions:
    top: int = 1
    scale: float = 1.0
    flag: bool = False
    tag: str = "x"
    names: tuple[str, ...] = ()
    maybe: int | None = None


@register_method("memo-test")
class Memo(Method):
    """Answers every task with the most common training target (a trained toy method)."""
    Options = MemoOptions
    uses_model = False
    trainable = True

    def fit(self, bench, track):
        targets = Counter(t["target"] for t in bench.train_tasks(track, columns=["target"]))
        self.answer = targets.most_common(self.options.top)[-1][0]
        (self.context.artifacts("logs") / "fit.txt").write_text("trained\n")

    def save(self, directory: Path) -> None:
        (directory / "memo.json").write_text(json.dumps({"answer": self.answer}))

    def load(self, directory: Path) -> None:
        self.answer = json.loads((directory / "memo.json").read_text())["answer"]

    def predict(self, repo_id, tasks):
        return [self.answer for _ in tasks]


@register_method("other-test")
class Other(Memo):
    """Another trained toy method (its checkpoints are not Memo's)."""


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    files = {**TESTS, "pkg/core.py": "def compute(x):\n    return x\n"}
    return build_bench(tmp_path_factory.mktemp("bench"), files, [None, None, "cr_test"], "m")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), list(TESTS.values()))


def test_options_are_parsed_to_their_types():
    opts = parse_options(Memo, ["top=3", "scale=0.5", "flag=yes", "tag=abc", "names=a, b",
                                "maybe=none"])
    assert opts == MemoOptions(top=3, scale=0.5, flag=True, tag="abc", names=("a", "b"), maybe=None)
    assert parse_options(Memo, ["maybe=4"]).maybe == 4
    assert parse_options(Memo, {"top": 2}).top == 2
    assert parse_options(Memo, []) == MemoOptions()
    with pytest.raises(UserError, match=r"no option 'topp'; valid options: top \(int, default 1\)"):
        parse_options(Memo, ["topp=3"])
    with pytest.raises(UserError, match=r"option top='three' of method 'memo-test': expected int"):
        parse_options(Memo, ["top=three"])
    with pytest.raises(UserError, match="expected bool"):
        parse_options(Memo, ["flag=maybe"])
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_options(Memo, ["top"])


def test_registering_a_non_method_is_an_error():
    with pytest.raises(TypeError, match="not a subclass"):
        register_method("bad-test")(dict)  # type: ignore[arg-type]


def test_train_once_then_evaluate_with_checkpoint(bench, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(["train", "--method", "memo-test", "--dataset", str(bench), "--out", str(ckpt),
                 "--option", "top=1", "--no-progress"]) == 0
    record = json.loads((ckpt / "method.json").read_text())
    assert record["method"] == "memo-test" and record["options"]["top"] == 1
    assert (ckpt / "memo.json").exists() and (ckpt / "logs/fit.txt").exists()
    res = evaluate(bench, "static", "test_cross_repo", "memo-test", "-", tmp_path / "run",
                   checkpoint=ckpt, progress=False)
    assert res.checkpoint == str(ckpt) and res.scores["metrics"]["em"]["micro"] > 0
    saved = json.loads((tmp_path / "run/results.json").read_text())
    assert saved["checkpoint"] == str(ckpt) and saved["method"]["top"] == 1
    # without --checkpoint a trained method trains first, in the run's artifacts directory
    res2 = evaluate(bench, "static", "test_cross_repo", "memo-test", "-", tmp_path / "run2",
                    progress=False)
    assert (tmp_path / "run2/artifacts/checkpoint/memo.json").exists()
    assert res2.scores["metrics"]["em"] == res.scores["metrics"]["em"]
    # a checkpoint of another method is refused, in one line
    assert main(["evaluate", "--method", "other-test", "--checkpoint", str(ckpt), "--dataset",
                 str(bench), "--split", "test_cross_repo", "--out", str(tmp_path / "r3"),
                 "--no-progress"]) == 2
    assert "checkpoint of method 'memo-test', not of 'other-test'" in capsys.readouterr().err
    assert main(["train", "--method", "gold", "--dataset", str(bench), "--out",
                 str(tmp_path / "c2")]) == 2
    assert "does not train" in capsys.readouterr().err


def test_requests_carry_their_adapter(bench, tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapters = {f"m/r{i}": make_peft_adapter(tiny_model, tmp_path / f"a{i}", i, alpha=8)
                for i in range(2)}

    @register_method("adapted-test")
    class Adapted(Method):
        def adapter(self, task):
            return adapters.get(task["repo_id"])

    gen = GenerationConfig(max_new_tokens=6)
    res = evaluate(bench, "static", "test_in_repo", "adapted-test", str(tiny_model),
                   tmp_path / "run", generation=gen, progress=False)
    preds = {json.loads(x)["task_id"]: json.loads(x)["raw"]
             for x in (tmp_path / "run/predictions.jsonl").read_text().splitlines()[1:]}
    tasks = [t for t in __import__("repopeftbench.dataset").dataset.Benchmark(bench).tasks(
        "static", "test_in_repo")]
    assert res.scores["n_tasks"] == len(tasks) and len({t["repo_id"] for t in tasks}) == 2
    tok = AutoTokenizer.from_pretrained(tiny_model)
    for repo_id, path in adapters.items():
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), path).eval()
        ref = HFGenerator(model, tok, GenerationConfig(max_new_tokens=6), progress=False,
                         options=HFOptions(batch_size=1))
        mine = [t for t in tasks if t["repo_id"] == repo_id]
        assert [preds[t["task_id"]] for t in mine] == ref.generate([t["prefix"] for t in mine]) \
            == reference_generate(ref, [t["prefix"] for t in mine])    # model.generate per task
    base = HFGenerator(AutoModelForCausalLM.from_pretrained(tiny_model).eval(), tok,
                       GenerationConfig(max_new_tokens=6), progress=False,
                         options=HFOptions(batch_size=1))
    plain = base.generate([t["prefix"] for t in tasks])
    adapted = [preds[t["task_id"]] for t in tasks]
    assert plain != adapted  # the adapters change what the model says
    # batches of 4 mix both repositories' adapters (per-row LoRA): the same predictions
    evaluate(bench, "static", "test_in_repo", "adapted-test", str(tiny_model), tmp_path / "run4",
             generation=GenerationConfig(max_new_tokens=6), progress=False,
             backend_options={"batch_size": 4})
    mixed = {json.loads(x)["task_id"]: json.loads(x)["raw"]
             for x in (tmp_path / "run4/predictions.jsonl").read_text().splitlines()[1:]}
    assert mixed == preds


def test_one_line_errors(bench, tmp_path, capsys, monkeypatch):
    common = ["evaluate", "--dataset", str(bench), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(common + ["--split", "test_cross_repo", "--model", "/nonexistent/model"]) == 2
    assert capsys.readouterr().err.strip() == "error: model path /nonexistent/model does not exist"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(common + ["--split", "test_cross_repo", "--model", "someorg/somemodel"]) == 2
    err = capsys.readouterr().err
    assert "cannot load model 'someorg/somemodel'" in err and "offline" in err
    assert err.count("\n") == 1
    if not torch.cuda.is_available():
        assert main(common + ["--split", "test_cross_repo", "--device", "cuda"]) == 2
        assert "--device cuda: torch" in capsys.readouterr().err
    assert main(common + ["--split", "test_ood"]) == 2
    err = capsys.readouterr().err
    assert "split 'test_ood' of 'static' is empty or was not built" in err and err.count("\n") == 1
    assert main(common + ["--split", "test_cross_repo", "--method", "memo-test",
                          "--option", "nope=1"]) == 2
    assert "has no option 'nope'" in capsys.readouterr().err
    with pytest.raises(UserError):
        main(["--debug"] + common + ["--split", "test_ood"])


def test_built_in_methods_are_found_in_their_modules_without_entry_points(tmp_path):
    """A new built-in method is one file and its decorator: with no entry point at all,
    every built-in method is found by the scan of its package's modules."""
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    code = ("import importlib.metadata as m; m.entry_points = lambda **k: []\n"
            "from evaluators import registry\n"
            "registry.entry_points = lambda **k: []\n"
            "print(' '.join(registry.available_methods()))\n")
    names = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                           check=True).stdout.split()
    assert {"pretrained", "shared-lora", "per-repo-lora", "rag-bm25", "rag-dense", "fft",
            "fft-rag", "code2lora-static", "code2lora-evo", "text2lora", "repo-examples", "gold",
            "empty"} <= set(names)
    from evaluators.registry import builtin_method_modules
    assert "baselines.pretrained" in builtin_method_modules()
    assert "evaluators.registry" not in builtin_method_modules()
