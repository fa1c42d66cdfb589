"""Dependency-resolved context (the publication's DRC baseline): the definitions the
prefix imports from the repository (``evaluators.drc``), before the prefix. It is
``pretrained --option context=drc`` under its own name and option (``budget``)."""
from __future__ import annotations

from dataclasses import dataclass

from evaluators.context import ContextOptions
from evaluators.registry import Method, register_method


@dataclass
class DRCOptions:
    budget: int = 4096            # tokens of context at most (the input budget cuts further)


@register_method("drc")
class DependencyResolvedContext(Method):
    """The definitions the prefix imports from its repository before the prefix (the
    context table only; imports resolved, re-exports followed, compressed by relevance)."""
    Options = DRCOptions
    demo = False          # it fills the prompt: the demo's time budget has rag-bm25 for that

    def context_options(self) -> ContextOptions:
        return ContextOptions(context="drc", context_budget=self.options.budget)
