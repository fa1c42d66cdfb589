"""One LoRA adapter per repository, trained on its in-repo training tasks (SPEC section 9)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from evaluators.registry import Method, register_method
from repopeftbench.errors import UserError
from repopeftbench.io import canonical_json, sha256_text

from .lora_training import LoraOptions, cap_per_repo, data_hash, train_lora_adapter


@register_method("per-repo-lora")
class PerRepoLora(Method):
    """A LoRA adapter per repository from its own training tasks (in-repo splits only)."""
    Options = LoraOptions
    trainable = True

    def check_split(self, track: str, split: str) -> None:
        if not split.endswith("_in_repo") and split != "train":
            raise UserError(f"per-repo-lora serves in-repo splits only (train, "
                            f"validation_in_repo, test_in_repo): the repositories of {split} "
                            f"have no training tasks")

    def fit(self, bench, track: str) -> None:
        tasks = cap_per_repo(bench.train_tasks(track, columns=["prefix", "target"]),
                             self.options.max_train_tasks_per_repo)
        by_repo: dict[str, list[dict]] = {}
        for t in tasks:
            by_repo.setdefault(t["repo_id"], []).append(t)
        self._adapters: dict[str, Path] = {}
        for repo_id in sorted(by_repo):
            # cached by (repository, training data, configuration, seed)
            key = sha256_text(canonical_json({
                "repo": repo_id, "data": data_hash(by_repo[repo_id]), "seed": self.context.seed,
                "options": {k: v for k, v in self.config().items() if k != "name"},
                "model": self.context.model_name}))[:16]
            out = self.context.artifacts("adapters", key)
            if not (out / "adapter" / "adapter_model.safetensors").exists():
                train_lora_adapter(self.context.model_name, self.context.device, by_repo[repo_id],
                                   self.options, self.context.seed, out,
                                   f"per-repo-lora {repo_id}", self.context.progress,
                                   prompt=self.training_prompt(bench, by_repo[repo_id],
                                                               self.options.max_seq_len))
            self._adapters[repo_id] = out / "adapter"

    def save(self, directory: Path) -> None:
        index = {}
        for repo_id, path in sorted(self._adapters.items()):
            rel = Path("adapters") / path.parent.name / "adapter"
            if path.resolve() != (directory / rel).resolve():
                shutil.copytree(path, directory / rel, dirs_exist_ok=True)
            index[repo_id] = rel.as_posix()
        (directory / "adapters.json").write_text(json.dumps(index, indent=2, sort_keys=True))

    def load(self, directory: Path) -> None:
        index = json.loads((directory / "adapters.json").read_text())
        self._adapters = {r: directory / p for r, p in index.items()}

    def adapter(self, task: dict):
        path = self._adapters.get(task["repo_id"])
        if path is None:
            raise UserError(f"per-repo-lora has no adapter for {task['repo_id']} "
                            f"(it had no training tasks)")
        return path
