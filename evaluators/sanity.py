"""Sanity methods: ``gold`` answers with the reference (must score 100), ``empty`` with
nothing (must score 0). They check the harness and the scorer, not a model."""
from __future__ import annotations

from .registry import Method, register_method


@register_method("gold")
class Gold(Method):
    """Answers with the reference target (sanity check: must score 100)."""
    uses_model = False
    sanity = True

    def predict(self, repo_id: str, tasks: list[dict]) -> list[str]:
        return [t["target"] for t in tasks]


@register_method("empty")
class Empty(Method):
    """Answers with nothing (sanity check: must score 0)."""
    uses_model = False
    sanity = True

    def predict(self, repo_id: str, tasks: list[dict]) -> list[str]:
        return ["" for _ in tasks]
