"""Full fine-tuning baselines: every weight of the model trained on the training tasks,
without (``fft``) and with (``fft-rag``) retrieved repository chunks in the prompt."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from evaluators.context import ContextOptions
from evaluators.registry import Method, register_method

from .lora_training import TrainOptions


@dataclass
class FFTOptions(TrainOptions, ContextOptions):
    """Full fine-tuning: the shared training options, with a smaller learning rate."""
    learning_rate: float = 1e-5


@dataclass
class FFTRagOptions(FFTOptions):
    """fft-rag: BM25 chunks (k=3, 512 tokens) before the prefix, in training and prediction."""
    context: str = "bm25"


@register_method("fft")
class FullFineTuning(Method):
    """All weights fine-tuned on the training tasks (prefix -> target)."""
    Options = FFTOptions
    trainable = True

    def fit(self, bench, track: str) -> None:
        from evaluators.models import load_model
        from evaluators.training import encode_tasks, train_causal_lm

        tasks = self.options.training_tasks(bench.train_tasks(track, columns=["prefix", "target"]))
        o = self.options
        prompt = self.training_prompt(bench, tasks, o.max_seq_len)
        model, tokenizer, _ = load_model(self.context.model_name, self.context.device)
        model.train()
        examples = encode_tasks(tokenizer, tasks, o.max_seq_len, prompt=prompt)
        out = self.context.artifacts(self.name)
        result = train_causal_lm(model, tokenizer, examples, o.train_config(self.context.seed), out,
                                 self.context.device,
                                 title=f"{self.name} ({track})", progress=self.context.progress)
        model.save_pretrained(out / "model", safe_serialization=True)
        tokenizer.save_pretrained(out / "model")
        shutil.rmtree(out / "trainer", ignore_errors=True)  # optimizer states: GBs, not needed
        (out / "train_result.json").write_text(json.dumps(
            {**result.to_dict(), "n_tasks": len(tasks)}, indent=2))
        self._use(out / "model")

    def _use(self, model_dir: Path) -> None:
        self._model_dir = model_dir
        self.context.model_name = str(model_dir)
        self.context._backend = None  # generation loads the fine-tuned weights

    def save(self, directory: Path) -> None:
        target = directory / self.name / "model"
        if self._model_dir.resolve() != target.resolve():
            shutil.copytree(self._model_dir, target, dirs_exist_ok=True)

    def load(self, directory: Path) -> None:
        self._use(directory / self.name / "model")


@register_method("fft-rag")
class FullFineTuningRag(FullFineTuning):
    """All weights fine-tuned with BM25-retrieved chunks in the prompt, as at prediction
    (``fft --option context=bm25``)."""
    Options = FFTRagOptions
