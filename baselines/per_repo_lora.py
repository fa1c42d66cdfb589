"""One LoRA adapter per repository, trained on its in-repo training tasks (SPEC section 9).

``init_adapter=`` starts every repository's adapter from one trained adapter (a
shared-lora checkpoint) instead of zero, so the repository's own tasks refine what all
repositories taught. ``audit=true`` also scores each task with another repository's
adapter (``other``: half-way round the sorted repositories of the evaluated tasks), so
``own - other`` is what a repository's own adapter adds beyond an adapter trained the
same way on another repository; and with the leave-one-out mean of the other evaluated
repositories' adapters (``mean``: the mean of their weight updates, exactly), so
``own - mean`` is the same comparison as Code2LoRA's audit: what a repository's own
adapter adds beyond what the others share. The exact mean is of rank (n - 1) r and
slows every row it serves; ``mean_rank=k`` truncates the mean of all n adapters to its best
rank-k approximation once and serves each leave-one-out mean (n mean_k - own) / (n - 1),
of rank k + r, recording a bound on the relative error of a module's weight update.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from evaluators.backends.base import AdapterWeights
from evaluators.lora.peft_format import (leave_one_out_peft_adapter, load_peft_adapter,
                                         mean_peft_adapter, truncate_peft_adapter)
from evaluators.partners import halfway_partners
from evaluators.registry import Method, register_method
from repopeftbench.errors import UserError
from repopeftbench.io import canonical_json, sha256_text

from .lora_training import (LoraOptions, data_hash, init_adapter_hash,
                            train_lora_adapter)


@dataclass
class PerRepoLoraOptions(LoraOptions):
    audit: bool = False      # also score every task with another repository's adapter and
    #                          with the mean of the others'
    mean_rank: int = 0       # the audit's mean at this rank (the best approximation, a bound
    #                          on its error in the audit record); 0: exact, (repositories - 1) r


@register_method("per-repo-lora")
class PerRepoLora(Method):
    """A LoRA adapter per repository from its own training tasks (in-repo splits only)."""
    Options = PerRepoLoraOptions
    trainable = True
    audit_modes: ClassVar[tuple[str, ...]] = ("own", "other", "mean")
    keyless_defaults = ("init_adapter",)
    unkeyed = ("audit", "mean_rank")    # mean_rank changes the mean mode only (audit_tag)
    mode = "own"

    def check_split(self, track: str, split: str) -> None:
        if not split.endswith("_in_repo") and split != "train":
            raise UserError(f"per-repo-lora serves in-repo splits only (train, "
                            f"validation_in_repo, test_in_repo): the repositories of {split} "
                            f"have no training tasks")

    def fit(self, bench, track: str) -> None:
        tasks = self.options.training_tasks(bench.train_tasks(track, columns=["prefix", "target"]))
        by_repo: dict[str, list[dict]] = {}
        for t in tasks:
            by_repo.setdefault(t["repo_id"], []).append(t)
        self._adapters: dict[str, Path] = {}
        start = ({"init": init_adapter_hash(self.options.init_adapter)}
                 if self.options.init_adapter else {})
        for repo_id in sorted(by_repo):
            out = self._adapter_dir(repo_id, by_repo[repo_id], start)
            if not (out / "adapter" / "adapter_model.safetensors").exists():
                train_lora_adapter(self.context.model_name, self.context.device, by_repo[repo_id],
                                   self.options, self.context.seed, out,
                                   f"per-repo-lora {repo_id}", self.context.progress,
                                   prompt=self.training_prompt(bench, by_repo[repo_id],
                                                               self.options.max_seq_len))
            self._adapters[repo_id] = out / "adapter"

    def _adapter_dir(self, repo_id: str, tasks: list[dict], start: dict) -> Path:
        """Where a repository's adapter is cached: by (repository, training data,
        configuration, seed, starting weights), not by which other repositories train
        (max_train_repos: a repository's adapter is the same in a run of a few repositories
        and in one of all), nor by how ``init_adapter`` is spelled (its weights' hash is
        in ``start``). An adapter cached under the earlier key, which held the spelling
        too, is used where it exists."""
        def key(drop: tuple[str, ...]) -> str:
            return sha256_text(canonical_json({
                "repo": repo_id, "data": data_hash(tasks), "seed": self.context.seed,
                "options": {k: v for k, v in self.config().items() if k not in drop},
                "model": self.context.model_name, **start}))[:16]
        root = self.context.artifacts("adapters")
        out = root / key(("name", "max_train_repos", "init_adapter"))
        if self.options.init_adapter and not (out / "adapter").exists():
            legacy = root / key(("name", "max_train_repos"))
            if (legacy / "adapter" / "adapter_model.safetensors").exists():
                return legacy
        out.mkdir(exist_ok=True)
        return out

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

    def audit_item(self, task: dict) -> str:
        return task["repo_id"]          # "other" is another evaluated repository's

    def prepare(self, tasks: list[dict]) -> None:
        self._repos = sorted({t["repo_id"] for t in tasks})
        self._partner = halfway_partners(self._repos)
        self._means: dict[str, AdapterWeights] = {}
        self._loaded: dict[str, tuple[dict, dict]] = {}
        self._mean_error: float | None = None   # the largest relative error of a truncated mean
        self._total: tuple[tuple[dict, dict], dict[str, float]] | None = None

    def audit_tag(self, mode: str) -> str:
        tag = super().audit_tag(mode)
        if self.options.mean_rank and mode in ("mean", "info"):
            tag += f"r{self.options.mean_rank}"
        return tag

    def audit_info(self) -> dict:
        if not self.options.mean_rank:
            return {}
        return {"mean_rank": self.options.mean_rank,
                "mean_max_relative_error": (None if self._mean_error is None     # none made
                                            else round(self._mean_error, 6))}

    MEANS_KEPT = 2     # leave-one-out means kept made (of rank (repositories - 1) r, or
    #                    mean_rank + r)

    def _mean_without(self, repo_id: str) -> AdapterWeights:
        """The mean of the other evaluated repositories' adapters (leave-one-out; a lone
        repository's own), made once per repository: exact, or with ``mean_rank`` from the
        mean of all of them truncated once (``leave_one_out_peft_adapter``)."""
        if repo_id not in self._means:
            what = f"per-repo-lora mean without {repo_id}"
            others = [r for r in self._repos if r != repo_id] or [repo_id]
            tag = sha256_text(canonical_json(others))[:12]
            r = int(self._load(repo_id)[0]["r"])
            if self.options.mean_rank and len(others) * r > self.options.mean_rank + r:
                mean, residual = self._truncated_mean()   # (else: exact at no more rank)
                config, tensors, error = leave_one_out_peft_adapter(
                    mean, len(self._repos), self._load(repo_id), residual, what)
                self._mean_error = max(self._mean_error or 0.0, error)
                tag += f"-r{self.options.mean_rank}"
            else:
                config, tensors = mean_peft_adapter([self._load(o) for o in others], what)
                if self.options.mean_rank:
                    self._mean_error = self._mean_error or 0.0     # served exactly
            self._means[repo_id] = AdapterWeights(
                f"per-repo-lora@{id(self):x}:mean-{tag}-without-{repo_id}", config, tensors)
            while len(self._means) > self.MEANS_KEPT:
                self._means.pop(next(iter(self._means)))
        return self._means[repo_id]

    def _load(self, repo_id: str) -> tuple[dict, dict]:
        if repo_id not in self._loaded:
            self._loaded[repo_id] = load_peft_adapter(self._path(repo_id))
        return self._loaded[repo_id]

    def _truncated_mean(self) -> tuple[tuple[dict, dict], dict[str, float]]:
        """The mean of every evaluated repository's adapter at ``mean_rank`` (made once),
        and each module's residual."""
        if self._total is None:
            config, tensors = mean_peft_adapter([self._load(r) for r in self._repos],
                                                "per-repo-lora mean")
            config, tensors, residual = truncate_peft_adapter(
                config, tensors, self.options.mean_rank, "per-repo-lora mean")
            self._total = ((config, tensors), residual)
        return self._total

    def _path(self, repo_id: str) -> Path:
        path = self._adapters.get(repo_id)
        if path is None:
            raise UserError(f"per-repo-lora has no adapter for {repo_id} "
                            f"(it had no training tasks)")
        return path

    def adapter(self, task: dict):
        repo_id = task["repo_id"]
        if self.mode == "mean":
            return self._mean_without(repo_id)
        if self.mode == "other":
            repo_id = getattr(self, "_partner", {}).get(repo_id, repo_id)
        return self._path(repo_id)
