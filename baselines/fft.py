"""Full fine-tuning baselines: every weight of the model trained on the training tasks,
without (``fft``) and with (``fft-rag``) retrieved repository chunks in the prompt."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from evaluators.backends.base import Request
from evaluators.registry import Method, register_method

from .lora_training import TrainOptions, cap_per_repo
from .rag import RagBM25, RagOptions


@dataclass
class FFTOptions(TrainOptions):
    """Full fine-tuning: the shared training options, with a smaller learning rate."""
    learning_rate: float = 1e-5


@register_method("fft")
class FullFineTuning(Method):
    """All weights fine-tuned on the training tasks (prefix -> target)."""
    Options = FFTOptions
    trainable = True

    def prompts(self, repo_id: str, tasks: list[dict]) -> list[str]:
        return [t["prefix"] for t in tasks]

    def fit(self, bench, track: str) -> None:
        from evaluators.models import load_model
        from evaluators.training import encode_tasks, train_causal_lm

        self.setup(bench, track)
        tasks = cap_per_repo(bench.train_tasks(track, columns=["prefix", "target"]),
                             self.options.max_train_tasks_per_repo)
        by_repo: dict[str, list[dict]] = {}
        for t in tasks:
            by_repo.setdefault(t["repo_id"], []).append(t)
        prompts = {}
        for repo_id, group in sorted(by_repo.items()):
            prompts.update(zip((t["task_id"] for t in group), self.prompts(repo_id, group)))
        model, tokenizer, _ = load_model(self.context.model_name, self.context.device)
        model.train()
        o = self.options
        examples = encode_tasks(tokenizer, tasks, o.max_seq_len, prompt=lambda t: prompts[t["task_id"]])
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

    def predict(self, repo_id: str, tasks: list[dict]) -> list[Request]:
        return [Request(p) for p in self.prompts(repo_id, tasks)]


@register_method("fft-rag")
class FullFineTuningRag(FullFineTuning):
    """All weights fine-tuned with BM25-retrieved chunks in the prompt, as at prediction."""
    Options = FFTOptions

    def setup(self, bench, track: str) -> None:
        if getattr(self, "_rag", None) is None:  # fit prepares it; the harness calls again
            self._rag = RagBM25(self.context, RagOptions())
            self._rag.setup(bench, track)

    def prompts(self, repo_id: str, tasks: list[dict]) -> list[str]:
        return [r.prompt for r in self._rag.predict(repo_id, tasks)]
