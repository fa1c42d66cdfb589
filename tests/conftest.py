"""Shared test helpers: tiny git repositories made on the fly, with fixed dates."""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Offline before anything imports huggingface_hub (it reads these once, at import time).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# Module-scoped fixtures run before the per-test cache below applies: they get a
# session-wide temporary cache, never the user's home.
os.environ["REPOPEFTBENCH_CACHE"] = tempfile.mkdtemp(prefix="repopeftbench-tests-")
atexit.register(shutil.rmtree, os.environ["REPOPEFTBENCH_CACHE"], ignore_errors=True)

_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent-home-for-tests"}


def git(repo: Path, *args: str, date: str = "2024-01-01T00:00:00Z") -> str:
    env = {**os.environ, **_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    out = subprocess.run(["git", "-c", "init.defaultBranch=main", "-C", str(repo), *args],
                         capture_output=True, env=env, check=True)
    return out.stdout.decode()


def make_repo(path: Path, files: dict[str, bytes | str], date: str = "2024-01-01T00:00:00Z",
              message: str = "initial") -> Path:
    """A git repository with one commit holding ``files`` (str values are UTF-8 encoded)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    commit_files(path, files, date=date, message=message)
    return path


def commit_files(path: Path, files: dict[str, bytes | str], date: str = "2024-01-01T00:00:00Z",
                 message: str = "change") -> str:
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message, date=date)
    return git(path, "rev-parse", "HEAD").strip()


@pytest.fixture(autouse=True)
def _offline_hf(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path_factory):
    """Predictions caches and converted models never go to the user's home: the converted
    default model is shared by the whole session, everything else is per test."""
    shared = tmp_path_factory.getbasetemp() / "shared_cache"
    (shared / "models").mkdir(parents=True, exist_ok=True)
    cache = tmp_path_factory.mktemp("cache")
    (cache / "models").symlink_to(shared / "models")
    monkeypatch.setenv("REPOPEFTBENCH_CACHE", str(cache))


TINY_TEXT = [
    "import pytest\n\n\ndef test_value():\n    value = compute(3)\n    assert value == 121\n",
    "class TestA:\n    def test_b(self):\n        self.assertEqual(x, f(2))\n",
    "def compute(x):\n    return x * 7 + 100\n",
]


def make_tiny_model(path: Path, texts: list[str] | None = None, seed: int = 0,
                    hidden_size: int = 32) -> Path:
    """A 2-layer Qwen2 with a byte-level BPE tokenizer trained on the fly, saved to ``path``
    (2 attention heads of ``hidden_size / 2``; engines with fused kernels want 64)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<pad>", "<eos>", "<fim_middle>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((texts or TINY_TEXT) * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(fast), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def build_bench(root: Path, files: dict[str, str], splits: list[str | None], prefix: str) -> Path:
    """A benchmark of ``len(splits)`` copies of one repository (ids ``{prefix}/r{i}``, each
    forced into its split, None for the hashed default), built into ``root/out``. Each copy
    has a file of its own (not context: .txt) so that they are not one repository listed
    several times, which a build mines once."""
    import json

    from miners.build import build

    repos = [make_repo(root / f"r{i}", {**files, "COPY.txt": f"{prefix}/r{i}\n"})
             for i in range(len(splits))]
    lst = root / "repos.jsonl"
    lst.write_text("".join(json.dumps({"repo_id": f"{prefix}/r{i}", "url": str(r), "split": sp}) + "\n"
                           for i, (r, sp) in enumerate(zip(repos, splits))))
    build(lst, root / "out", progress=False)
    return root / "out"


def make_peft_adapter(model_dir: Path, out: Path, seed: int, r: int = 4,
                      targets: tuple[str, ...] = ("q_proj", "v_proj"), alpha: float | None = None,
                      layers: list[int] | None = None) -> Path:
    """A PEFT LoRA adapter for the model at ``model_dir`` with random, non-zero A and B
    (on the decoder layers ``layers`` only, when given)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=r, lora_alpha=alpha if alpha is not None else 2 * r + seed,
                                      target_modules=list(targets), init_lora_weights=False,
                                      layers_to_transform=layers))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    model.save_pretrained(out)
    return out
