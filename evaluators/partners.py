"""Which repository stands in for another in a control (an audit's "other" adapter or
examples, ``context_source=other``)."""
from __future__ import annotations

from typing import Iterable


def halfway_partners(repo_ids: Iterable[str]) -> dict[str, str]:
    """Each repository's partner: half-way round the sorted list, so no repository is its
    own partner when there are two or more, and the choice depends on the set only."""
    repos = sorted(set(repo_ids))
    return {r: repos[(i + len(repos) // 2) % len(repos)] for i, r in enumerate(repos)}
