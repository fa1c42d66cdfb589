"""Task filters and per-function/file/repo caps stratified by target type (SPEC section 4).

Every dropped task is counted under exactly one reason, the first that applies.
"""
from __future__ import annotations

import hashlib
import string
from collections import Counter, defaultdict
from typing import Callable, Sequence, TypeVar

from repopeftbench.reasons import Reason
from repopeftbench.schema import TARGET_TYPES

# "Punctuation-only" targets: brackets, commas and whitespace, nothing else (a string or
# set literal of punctuation, such as {"-", "~"}, is a real target).
_PUNCT = set("()[]{},") | set(string.whitespace)


def target_reason(in_function: bool, target: str, max_target_chars: int,
                  profile: str = "default") -> Reason | None:
    """The first filter that rejects a task for its position or target, or None. The
    ``paper`` profile has no one-character filter and a narrower punctuation filter."""
    if not in_function:
        return Reason.MODULE_LEVEL
    if profile == "paper":
        if all(ch in ")]} \t\n" for ch in target):
            return Reason.EMPTY_TARGET
    else:
        if not target.strip() or all(ch in _PUNCT for ch in target):
            return Reason.EMPTY_TARGET
        if len(target.strip()) == 1:
            return Reason.ONE_CHAR_TARGET
    if target.lstrip().startswith(","):
        return Reason.LEADING_COMMA
    if len(target) > max_target_chars:
        return Reason.TARGET_TOO_LONG
    return None


def prefix_reason(prefix: str) -> Reason | None:
    return Reason.PREFIX_PAREN_COMMA if "(," in prefix else None


def filter_reason(in_function: bool, prefix: str, target: str, max_target_chars: int) -> Reason | None:
    """All per-task filters in order (``duplicate`` and the caps come later)."""
    return target_reason(in_function, target, max_target_chars) or prefix_reason(prefix)


T = TypeVar("T")


def _order_key(seed: int, ident: str) -> str:
    return hashlib.sha256(f"cap:{seed}:{ident}".encode()).hexdigest()


def stratified_cap(items: Sequence[T], cap: int, kind: Callable[[T], str],
                   ident: Callable[[T], str], seed: int) -> tuple[list[T], list[T]]:
    """Keep at most ``cap`` items, allocating the cap over target types in proportion
    to their counts (largest remainder), picking within a type in seeded-hash order.

    Returns (kept, dropped), both in the input order.
    """
    if len(items) <= cap:
        return list(items), []
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[kind(item)].append(i)
    order = sorted(groups, key=lambda t: TARGET_TYPES.index(t) if t in TARGET_TYPES else 99)
    exact = {t: cap * len(groups[t]) / len(items) for t in order}
    quota = {t: int(exact[t]) for t in order}
    left = cap - sum(quota.values())
    by_remainder = sorted(order, key=lambda t: (-(exact[t] - quota[t]), order.index(t)))
    for t in by_remainder[:left]:
        quota[t] += 1
    keep: set[int] = set()
    for t in order:
        ranked = sorted(groups[t], key=lambda i: _order_key(seed, ident(items[i])))
        keep.update(ranked[:quota[t]])
    kept = [items[i] for i in range(len(items)) if i in keep]
    dropped = [items[i] for i in range(len(items)) if i not in keep]
    return kept, dropped


def apply_caps(tasks: list[T], group_keys: Sequence[tuple[Reason, Callable[[T], object], int]],
               kind: Callable[[T], str], ident: Callable[[T], str], seed: int,
               counts: Counter) -> list[T]:
    """Apply nested caps (e.g. per function, then per file, then per repo) in turn."""
    for reason, key, cap in group_keys:
        grouped: dict[object, list[T]] = defaultdict(list)
        for t in tasks:
            grouped[key(t)].append(t)
        survivors: list[T] = []
        for group in grouped.values():
            kept, dropped = stratified_cap(group, cap, kind, ident, seed)
            survivors.extend(kept)
            counts[reason] += len(dropped)
        order = {id(t): i for i, t in enumerate(tasks)}
        tasks = sorted(survivors, key=lambda t: order[id(t)])
    return tasks
