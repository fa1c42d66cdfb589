"""Which files of a repository are test files (SPEC section 4)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import PurePosixPath

TEST_DIRS = frozenset({"tests", "test"})


@lru_cache(maxsize=1 << 16)      # asked for every changed path of every commit
def is_test_file(path: str) -> bool:
    """``test_*.py``, ``*_test.py``, or any ``.py`` file under a ``tests/`` or ``test/`` directory."""
    p = PurePosixPath(path)
    if p.suffix != ".py":
        return False
    name = p.name
    if name.startswith("test_") or name.endswith("_test.py"):
        return True
    return any(part in TEST_DIRS for part in p.parts[:-1])
