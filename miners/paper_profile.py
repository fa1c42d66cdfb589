"""The ``paper`` selection profile: which files and tasks the published code selected
(SPEC section 4.1), applied to our extraction (exact cuts, byte offsets, outer function).

- Test files: a ``.py`` path with a component containing ``test`` (any case), or a ``.py``
  file whose text mentions pytest or unittest, defines a ``test_*`` function or a class
  whose name contains ``test``.
- Filters: no one-character filter, no deduplication at extraction, and only targets made
  of closing brackets (or nothing) count as punctuation.
- Balancing, without randomness: at most 5 per (file, function name) and then 20 per file,
  each group sorted by (target was multi-line, target length); then deduplication on
  (file, target); then, above 200, the places are shared among target classes in
  proportion to their counts (largest remainder) and each class keeps its shortest targets.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import PurePosixPath

from repopeftbench.reasons import Reason

PROFILES = ("default", "paper")

_MENTIONS = re.compile(rb"import (pytest|unittest)|from (pytest|unittest)|(pytest|unittest)\.")
_TEST_DEF = re.compile(rb"^[ \t]*(async[ \t]+)?def[ \t]+test_", re.M)
_TEST_CLASS = re.compile(rb"^[ \t]*class[ \t]+\w*test", re.M | re.I)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")

# Target classes in the order they are checked (and the order ties are broken in).
PAPER_CLASSES = ("bool", "none", "string", "numeric", "collection", "call", "variable", "complex")


def path_is_test(path: str) -> bool:
    p = PurePosixPath(path)
    return p.suffix == ".py" and any("test" in part.lower() for part in p.parts)


def text_is_test(source: bytes) -> bool:
    return bool(_MENTIONS.search(source) or _TEST_DEF.search(source) or _TEST_CLASS.search(source))


def is_punctuation(target: str) -> bool:
    """Empty, or only closing brackets (and whitespace)."""
    return all(c in ")]} \t\n" for c in target)


def target_class(target: str) -> str:
    t = target.strip()
    if t.endswith(")"):
        t = t[:-1].strip()
    if t in ("True", "False"):
        return "bool"
    if t == "None":
        return "none"
    if t.startswith(("'", '"', "b'", 'b"', "f'", 'f"')):
        return "string"
    try:
        float(t[1:] if t.startswith("-") else t)
        return "numeric"
    except ValueError:
        pass
    if t.startswith(("[", "(", "{")):
        return "collection"
    if "(" in t:
        return "call"
    if _IDENTIFIER.fullmatch(t):
        return "variable"
    return "complex"


def _sort_key(row: dict) -> tuple[bool, int]:
    return (bool(row["_multiline"]), len(row["target"]))


def _cap_groups(rows: list[dict], key, cap: int, reason: Reason, counts: Counter) -> list[dict]:
    groups: dict[object, list[dict]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    out = []
    for group in groups.values():
        ordered = sorted(group, key=_sort_key)
        out += ordered[:cap]
        counts[reason] += max(0, len(ordered) - cap)
    return out


def paper_balance(rows: list[dict], cap_function: int, cap_file: int, cap_repo: int,
                  counts: Counter) -> list[dict]:
    """The published balancing of one repository's tasks (rows need ``_multiline``)."""
    rows = _cap_groups(rows, lambda r: (r["test_file"], r["test_function"]), cap_function,
                       Reason.CAP_FUNCTION, counts)
    rows = _cap_groups(rows, lambda r: r["test_file"], cap_file, Reason.CAP_FILE, counts)
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in rows:
        key = (r["test_file"], r["target"])
        if key in seen:
            counts[Reason.DUPLICATE] += 1
            continue
        seen.add(key)
        unique.append(r)
    if len(unique) <= cap_repo:
        return unique
    by_class: dict[str, list[dict]] = {c: [] for c in PAPER_CLASSES}
    for r in unique:
        by_class[target_class(r["target"])].append(r)
    exact = {c: cap_repo * len(by_class[c]) / len(unique) for c in PAPER_CLASSES}
    quota = {c: int(exact[c]) for c in PAPER_CLASSES}
    left = cap_repo - sum(quota.values())
    for c in sorted(PAPER_CLASSES, key=lambda c: (-(exact[c] - quota[c]), PAPER_CLASSES.index(c)))[:left]:
        quota[c] += 1
    kept = []
    for c in PAPER_CLASSES:
        kept += sorted(by_class[c], key=lambda r: len(r["target"]))[:quota[c]]
    counts[Reason.CAP_REPO] += len(unique) - len(kept)
    return kept
