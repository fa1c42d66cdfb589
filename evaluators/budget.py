"""What every trained method shares, whichever package it lives in: the training budget
(``TrainOptions``: optimisation and the CPU budget options ``max_steps``,
``max_train_tasks_per_repo``, ``max_seq_len``, ``top_layers``) and the choice of training
data (``cap_per_repo``, ``data_hash``). No torch here: methods are listed without it."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repopeftbench.dataset import first_repos

if TYPE_CHECKING:  # torch is imported only when a method trains
    from evaluators.training import TrainConfig


# budget options added after runs were cached: at their defaults they stay out of run keys
BUDGET_KEYLESS = ("max_train_repos",)


@dataclass
class TrainOptions:
    """Optimisation options of every trained baseline, with the CPU budget options
    ``max_steps``, ``max_train_tasks_per_repo`` and ``max_seq_len``."""
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_seq_len: int = 4096           # = the protocol's input budget (max_input_tokens)
    max_train_tasks_per_repo: int = 0   # 0: all
    save_steps: int = 200
    top_layers: int = 0                 # adapters on the top K decoder layers only (0: all)
    max_train_repos: int = 0            # train on the first N repositories only (0: all)

    def training_tasks(self, tasks: list[dict]) -> list[dict]:
        """The training tasks this budget allows: those of the first ``max_train_repos``
        repositories (``first_repos``, as ``--repos`` picks them for evaluation), at most
        ``max_train_tasks_per_repo`` of each."""
        if self.max_train_repos:
            keep = first_repos((t["repo_id"] for t in tasks), self.max_train_repos)
            tasks = [t for t in tasks if t["repo_id"] in keep]
        return cap_per_repo(tasks, self.max_train_tasks_per_repo)

    def train_config(self, seed: int) -> "TrainConfig":
        from evaluators.training import TrainConfig
        return TrainConfig(epochs=self.epochs, max_steps=self.max_steps,
                           learning_rate=self.learning_rate, batch_size=self.batch_size,
                           grad_accum=self.grad_accum, max_seq_len=self.max_seq_len, seed=seed,
                           save_steps=self.save_steps)



def cap_per_repo(tasks: list[dict], limit: int) -> list[dict]:
    """At most ``limit`` tasks of each repository (a fixed, hash-ordered choice); 0: all."""
    if limit <= 0:
        return tasks
    by_repo: dict[str, list[dict]] = {}
    for t in sorted(tasks, key=lambda t: hashlib.sha256(t["task_id"].encode()).hexdigest()):
        if len(by_repo.setdefault(t["repo_id"], [])) < limit:
            by_repo[t["repo_id"]].append(t)
    return sorted((t for ts in by_repo.values() for t in ts),
                  key=lambda t: (t["repo_id"], t["task_id"]))


def data_hash(tasks: list[dict]) -> str:
    h = hashlib.sha256()
    for t in tasks:
        h.update(f"{t['task_id']}\0".encode())
    return h.hexdigest()[:16]
