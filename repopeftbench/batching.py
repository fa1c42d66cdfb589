"""Cutting a sequence of items into consecutive groups within a size budget."""
from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")


def budget_groups(items: Sequence[T], sizes: Sequence[int], budget: int) -> list[list[T]]:
    """Consecutive groups of ``items`` whose ``sizes`` add up to at most ``budget`` (a
    group holds one item at least, however large)."""
    groups: list[list[T]] = []
    total = 0
    for item, size in zip(items, sizes):
        if not groups or total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(item)
        total += size
    return groups
