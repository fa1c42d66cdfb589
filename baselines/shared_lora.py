"""One LoRA adapter trained on every training task of the track (SPEC section 9)."""
from __future__ import annotations

import shutil
from pathlib import Path

from evaluators.registry import Method, register_method

from .lora_training import LoraOptions, train_lora_adapter


@register_method("shared-lora")
class SharedLora(Method):
    """A single LoRA adapter (rank 16, alpha 32, all projections) over all training tasks."""
    Options = LoraOptions
    trainable = True
    keyless_defaults = ("init_adapter",)

    def fit(self, bench, track: str) -> None:
        tasks = self.options.training_tasks(bench.train_tasks(track, columns=["prefix", "target"]))
        out = self.context.artifacts("shared")
        train_lora_adapter(self.context.model_name, self.context.device, tasks, self.options,
                           self.context.seed, out, f"shared-lora ({track})", self.context.progress,
                           prompt=self.training_prompt(bench, tasks, self.options.max_seq_len))
        self._adapter = out / "adapter"

    def save(self, directory: Path) -> None:
        if self._adapter.resolve() != (directory / "adapter").resolve():
            shutil.copytree(self._adapter, directory / "adapter", dirs_exist_ok=True)

    def load(self, directory: Path) -> None:
        self._adapter = directory / "adapter"

    def adapter(self, task: dict):
        return self._adapter
