"""The registered methods ``code2lora-static`` and ``code2lora-evo``.

Static: one adapter per repository, generated from its snapshot (context table).
Evo: one adapter per kept commit, generated from the GRU state after that commit's diff
(commits table); evaluation applies each task's commit adapter to its row, commits of
many repositories mixed in one batch.

Both carry the audit of SPEC section 9: the harness scores the same tasks with each row's
own adapter, with the mean adapter (leave-one-out: for each item, the mean weight update
of every other evaluated repository or commit), with a shuffled one (the item half-way
round the sorted list: another repository's adapter, or for Evo mostly another
repository's commit) and with none (the base model), and the results record the raw
pairwise cosine of the generated adapters.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from evaluators.backends.base import AdapterWeights, Request
from evaluators.registry import Method, register_method
from repopeftbench.errors import UserError

from .options import Code2LoRAOptions

if TYPE_CHECKING:  # torch is imported when the method trains or predicts, not when listed
    import torch

Key = Any   # an item: a repository id (Static) or (repository id, commit index) (Evo)


class _Code2LoRA(Method):
    Options = Code2LoRAOptions
    trainable = True
    audit_modes: ClassVar[tuple[str, ...]] = ("own", "mean", "shuffled", "none")
    # "mean" is the mean weight update since 2 (was the mean of the factors); the audit
    # info has the update cosines since 2
    # "mean" leaves the item's own adapter out since 3 (it held 1/n of it before)
    audit_revision: ClassVar[dict[str, str]] = {"mean": "3", "info": "2"}
    kind: ClassVar[str] = ""
    keyless_defaults = ("inputs", "card_chars", "init_shared",   # added after runs were cached
                        "objective", "targets")

    mode = "own"

    def config(self) -> dict:
        return {"name": self.name, **{k: v for k, v in super().config().items() if k != "audit"}}

    # ------------------------------------------------------------------ training
    def fit(self, bench, track: str) -> None:
        from .train import train_hypernetwork

        if self.kind == "evo" and self.options.inputs != "files":
            raise UserError(f"inputs={self.options.inputs} is Code2LoRA-Static's (a snapshot's "
                            f"API card); Code2LoRA-Evo encodes diffs")
        columns = ["prefix", "target"] + (["commit_index"] if self.kind == "evo" else [])
        tasks = self.options.training_tasks(bench.train_tasks(track, columns=columns))
        if not tasks:
            raise UserError(f"{bench.dir}: no {track} training tasks to train {self.name} on")
        self.bundle = train_hypernetwork(self.kind, bench, tasks, self.options, self.context,
                                         f"{self.name} ({track})",
                                         self.training_prompt(bench, tasks, self.options.max_seq_len))

    def save(self, directory: Path) -> None:
        self.bundle.save(directory / "hypernetwork")

    def load(self, directory: Path) -> None:
        from .bundle import Code2LoRABundle
        self.bundle = Code2LoRABundle.load(directory / "hypernetwork")

    # ------------------------------------------------------------------ prediction
    def setup(self, bench, track: str) -> None:
        self.bench = bench
        model, tokenizer = self.context.model() if self.bundle.encoder_config.name == "base" \
            else (None, None)
        self.bundle.check(self.context.model_name, self.options.encoder_config())
        self.bundle.attach_encoder(self.context.device, model, tokenizer,
                                   progress=self.context.progress)

    def item(self, task: dict) -> Key:
        raise NotImplementedError

    def _codes(self, tasks: list[dict]) -> "dict[Key, torch.Tensor]":
        raise NotImplementedError

    def prepare(self, tasks: list[dict]) -> None:
        """Code vectors of every item of the split, the mean adapter, the shuffle, cosines."""
        import torch

        from .audit import adapter_cosine
        codes = self._codes(tasks)
        self._keys = sorted(codes)
        self._z = torch.stack([codes[k] for k in self._keys])              # (items, d_in)
        self._row = {k: i for i, k in enumerate(self._keys)}
        n = len(self._keys)
        self._partner = {k: self._keys[(i + n // 2) % n] for i, k in enumerate(self._keys)}
        self._tag = hashlib.sha256(repr(self._keys).encode()).hexdigest()[:12]
        self._sums = None              # the updates' sum, for the leave-one-out means
        self._means: dict = {}         # item -> its leave-one-out mean adapter
        self._cosine = adapter_cosine(self.bundle, self._z)
        self._cosine["over"] = "repositories" if self.kind == "static" else "commits"

    MEANS_KEPT = 4     # leave-one-out means kept made (items are asked for in order; a
    #                    per-layer head's mean is of full rank, hundreds of MB)

    def _mean_without(self, key: Key) -> AdapterWeights:
        """The mean of every other item's adapter (leave-one-out), made once per item."""
        if key not in self._means:
            if self._sums is None:
                self._sums = self.bundle.update_sums(self._z)
            adapter = self.bundle.mean_adapter(self._z, f"mean-{self._tag}-without-{key}",
                                               leave_out=self._row[key], sums=self._sums)
            self._means[key] = self._weights(adapter)
            while len(self._means) > self.MEANS_KEPT:
                self._means.pop(next(iter(self._means)))
        return self._means[key]

    def audit_info(self) -> dict:
        return {"cosine": self._cosine}

    def audit_equivalent(self, mode: str) -> tuple[str, dict] | None:
        # "none" is the base model on the same prompts: pretrained with the same context
        return ("pretrained", dataclasses.asdict(self.context_options())) if mode == "none" else None

    def audit_item(self, task: dict) -> str:
        return repr(self.item(task))   # the mean, the shuffle and the cosines: of these items

    def _weights(self, adapter) -> AdapterWeights:
        # the loaded bundle in the name: several checkpoints of one method in one
        # evaluate-together share a backend, whose adapter cache is keyed by name
        return AdapterWeights(f"{self.name}@{id(self.bundle):x}:{self.mode}:{adapter.name}",
                              adapter.peft_config(),
                              adapter.peft_tensors())

    def predict(self, repo_id: str, tasks: list[dict]) -> list[Request]:
        import torch
        wanted = [self.item(t) for t in tasks]
        prompts = self.prompts(repo_id, tasks)     # the context provider's, as in training
        if self.mode == "none":                    # the base model: what any adapter adds
            return [Request(p) for p in prompts]
        if self.mode == "mean":
            return [Request(p, self._mean_without(k)) for p, k in zip(prompts, wanted)]
        source = {k: (self._partner[k] if self.mode == "shuffled" else k) for k in set(wanted)}
        keys = sorted(set(source.values()))
        rows = torch.tensor([self._row[k] for k in keys])
        made = self.bundle.adapters(self._z[rows], [str(k) for k in keys])
        by_key = {k: self._weights(a) for k, a in zip(keys, made)}
        return [Request(p, by_key[source[k]]) for p, k in zip(prompts, wanted)]


@register_method("code2lora-static")
class Code2LoRAStatic(_Code2LoRA):
    """Hypernetwork: repository snapshot -> LoRA adapter (one per repository)."""
    kind = "static"

    def item(self, task: dict) -> Key:
        return task["repo_id"]

    def check_split(self, track: str, split: str) -> None:
        if self.options.encoder == "table" and not split.endswith("_in_repo"):
            raise UserError(f"{self.name} with encoder=table has vectors for its training "
                            f"repositories only: evaluate in-repo splits, not {split}")

    def _codes(self, tasks: list[dict]) -> "dict[Key, torch.Tensor]":
        import torch
        repos = sorted({t["repo_id"] for t in tasks})
        return {r: torch.from_numpy(v) for r, v in self.bundle.snapshot_codes(self.bench, repos).items()}


@dataclass
class Text2LoRAOptions(Code2LoRAOptions):
    """Code2LoRA-Static's options with the per-layer (Text-to-LoRA) head."""
    head: str = "per_layer"


@register_method("text2lora")
class Text2LoRA(Code2LoRAStatic):
    """The publication's strengthened Text-to-LoRA baseline: Code2LoRA-Static's repository
    vector, data and budget, with the per-layer Text-to-LoRA head (learned layer and
    module-type embeddings beside the code vector, one (A, B) per layer)."""
    Options = Text2LoRAOptions


@register_method("code2lora-evo")
class Code2LoRAEvo(_Code2LoRA):
    """Hypernetwork with a GRU over production diffs: one adapter per kept commit."""
    kind = "evo"

    def check_split(self, track: str, split: str) -> None:
        if track != "evolution":
            raise UserError(f"{self.name} generates an adapter per commit and serves the "
                            f"evolution track; use code2lora-static for {track!r}")

    def item(self, task: dict) -> Key:
        return (task["repo_id"], int(task["commit_index"]))

    def _codes(self, tasks: list[dict]) -> "dict[Key, torch.Tensor]":
        repos = sorted({t["repo_id"] for t in tasks})
        states = self.bundle.commit_states(self.bench, repos)             # repo -> {index: state}
        out = {}
        for t in tasks:
            key = self.item(t)
            if key not in out:
                if key[1] not in states[key[0]]:
                    raise UserError(f"{self.bench.dir}: task {t['task_id']} is at commit "
                                    f"{key[1]} of {key[0]}, which the commits table lacks")
                out[key] = states[key[0]][key[1]]
        return out
