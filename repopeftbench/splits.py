"""Split assignment (SPEC section 6): pure functions of ids, seeds and times.

A repository's cross-repo split depends only on (seed, repo_id), so adding
repositories to a build never moves an existing one between splits.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Sequence


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def cross_repo_split(repo_id: str, seed: int, val_fraction: float = 0.1,
                     test_fraction: float = 0.1, forced: str | None = None,
                     is_ood: bool = False) -> str:
    if forced:
        return forced
    if is_ood:
        return "ood"
    u = unit_hash("cross_repo", seed, repo_id)
    if u < val_fraction:
        return "cr_val"
    if u < val_fraction + test_fraction:
        return "cr_test"
    return "train"


def in_repo_split(task_ids: Sequence[str], seed: int,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, str]:
    """Exact 8:1:1 (by default) split of one repository's tasks, seeded.

    Tasks are ranked by a seeded hash of their id; the first ``round(n*val)`` go to
    val, the next ``round(n*test)`` to test, the rest to train.
    """
    n = len(task_ids)
    n_val = round(n * fractions[1])
    n_test = round(n * fractions[2])
    ranked = sorted(task_ids, key=lambda t: unit_hash("in_repo", seed, t))
    out = {}
    for i, tid in enumerate(ranked):
        out[tid] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return out


def chronological_split(n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> list[str]:
    """In-repo split of ``n`` time-ordered items: first 80% train, next 10% val, rest test."""
    n_train = round(n * fractions[0])
    n_val = round(n * fractions[1])
    return ["train" if i < n_train else "val" if i < n_train + n_val else "test" for i in range(n)]


def parse_time(value: str) -> int:
    """UTC seconds from an ISO-8601 date or datetime ('2025-04-01', '2025-04-01T12:00:00Z')."""
    text = value.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO-8601 date: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


# The timestamps a commit may carry that fit int64 and a calendar date (years 1-9999);
# git stores any digits, e.g. 99999999999999999999.
MIN_TIMESTAMP, MAX_TIMESTAMP = -62135596800, 253402300799


def valid_timestamp(value: int | str | None) -> int | None:
    """``value`` as an int when it is a usable time, else None."""
    try:
        ts = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return ts if MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP else None


def iso_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
