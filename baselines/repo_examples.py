"""A ceiling test without training: does text of the repository's own tasks help?

``repo-examples`` puts ``k`` solved training tasks of the task's repository before its
prefix: each the last ``example_lines`` lines of the training task's prefix, completed by
its target, marked as an example. Its audit compares the same prompt built from the
training tasks of another repository (``other``: the repository half-way round the
sorted list of the evaluated ones), so ``own - other`` is what the repository's own
solved tasks add beyond the format of solved tasks.

Examples are a fixed choice per repository (the first ``k`` training tasks by a hash of
their id), the same for every task of the repository, so prompts share their example
block and the prefix sharing of generation and teacher forcing applies. The left
truncation of the input budget cuts the examples before the prefix. In-repo splits only:
the repositories of the cross-repo splits have no training tasks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from evaluators.backends.base import Request
from evaluators.partners import halfway_partners
from evaluators.registry import Method, register_method
from repopeftbench.errors import UserError


@dataclass
class RepoExamplesOptions:
    k: int = 4                    # solved training tasks before the prefix
    example_lines: int = 12       # lines of each example's prefix kept, before its target
    audit: bool = True            # also score with another repository's examples


SEPARATOR = "\n# ----- a solved example from this codebase -----\n"


def example_text(task: dict, lines: int) -> str:
    """The end of a training task's prefix, completed by its target, as one example."""
    tail = "\n".join(task["prefix"].split("\n")[-lines:])
    return f"{SEPARATOR}{tail}{task['target']}\n"


@register_method("repo-examples")
class RepoExamples(Method):
    """k solved training tasks of the repository before the prefix (audit: another
    repository's)."""
    Options = RepoExamplesOptions
    audit_modes: ClassVar[tuple[str, ...]] = ("own", "other")
    demo = False          # in-repo splits only; the demo scores the cross-repo split too
    mode = "own"

    def check_split(self, track: str, split: str) -> None:
        if not split.endswith("_in_repo"):
            raise UserError(f"repo-examples serves in-repo splits only (validation_in_repo, "
                            f"test_in_repo): the repositories of {split} have no training tasks")

    def config(self) -> dict:
        return {"name": self.name, "k": self.options.k,
                "example_lines": self.options.example_lines}

    def setup(self, bench, track: str) -> None:
        self.bench, self.track = bench, track
        self._blocks: dict[str, str] = {}

    def audit_item(self, task: dict) -> str:
        return task["repo_id"]          # "other" is another evaluated repository's

    def prepare(self, tasks: list[dict]) -> None:
        self._partner = halfway_partners(t["repo_id"] for t in tasks)

    def block(self, repo_id: str) -> str:
        """The example block of a repository (its first k training tasks by id hash)."""
        if repo_id not in self._blocks:
            train = self.bench.train_tasks(self.track, columns=["prefix", "target"], repos=[repo_id])
            train.sort(key=lambda t: hashlib.sha256(t["task_id"].encode()).hexdigest())
            self._blocks[repo_id] = "".join(example_text(t, self.options.example_lines)
                                            for t in train[:self.options.k])
        return self._blocks[repo_id]

    def predict(self, repo_id: str, tasks: list[dict]) -> list[Request]:
        source = self._partner.get(repo_id, repo_id) if self.mode == "other" else repo_id
        block = self.block(source)
        end = SEPARATOR.replace("a solved example", "the task") if block else ""
        return [Request(f"{block}{end}{t['prefix']}") for t in tasks]
