"""Dependency-resolved context (the publication's DRC baseline): the definitions the
prefix imports from the repository (``evaluators.drc``), before the prefix."""
from __future__ import annotations

from dataclasses import dataclass

from evaluators.backends.base import Request
from evaluators.drc import Resolver, resolve
from evaluators.registry import Method, register_method
from repopeftbench.errors import UserError


@dataclass
class DRCOptions:
    budget: int = 4096            # tokens of context at most (the input budget cuts further)


@register_method("drc")
class DependencyResolvedContext(Method):
    """The definitions the prefix imports from its repository before the prefix (the
    context table only; imports resolved, re-exports followed, compressed by relevance)."""
    Options = DRCOptions
    demo = False          # it fills the prompt: the demo's time budget has rag-bm25 for that

    def setup(self, bench, track: str) -> None:
        if not bench.has("context"):
            raise UserError(f"{bench.dir}: no context table; rebuild it with 'repopeftbench build'")
        self.bench = bench
        self._resolvers: dict[str, Resolver] = {}

    def resolver(self, repo_id: str) -> Resolver:
        if repo_id not in self._resolvers:
            rows = self.bench.context(repo_id, columns=["path", "content"])
            self._resolvers[repo_id] = Resolver({r["path"]: r["content"] for r in rows
                                                 if r["path"].endswith(".py")})
        return self._resolvers[repo_id]

    def predict(self, repo_id: str, tasks: list[dict]) -> list[Request]:
        _, tokenizer = self.context.model()

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        budget = self.context.generation.max_input_tokens
        out = []
        for t in tasks:
            room = budget - count(t["prefix"]) - 2
            got = resolve(t["prefix"], t.get("test_file", ""), self.resolver(repo_id),
                          min(self.options.budget, max(0, room)), count)
            out.append(Request(f"{got.text}\n{t['prefix']}" if got.text else t["prefix"]))
        return out
