"""Reading a built benchmark directory: its identity (manifest hash) and its tables.

Every method reads the benchmark through ``Benchmark``: tasks, kept commits with their
production diffs, the repository list and the context table (the repositories' non-test
code), with column projection and row filters pushed down to Parquet.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UserError
from .verify import read_manifest, verified_identity
from .schema import FILE_SPLITS, SPLIT_TABLES, TABLES, TASK_TABLES, table_path

TASK_CONFIGS = TASK_TABLES


class MissingTableError(UserError, FileNotFoundError):
    """A table (or a split of it) is not in the benchmark; the message says what to do."""


SAMPLES = ("hash", "per_repo")   # how --limit samples tasks


def first_repos(repo_ids: Iterable[str], n: int | None) -> set[str]:
    """The first ``n`` repositories by repo-id hash: a fixed choice, nested (a larger ``n``
    contains a smaller one's), shared by evaluation (``--repos``) and training
    (``max_train_repos``) so both pick the same repositories of an in-repo split.
    ``n`` None or 0: all of them."""
    ids = set(repo_ids)
    if not n or n >= len(ids):
        return ids
    return set(sorted(ids, key=lambda r: hashlib.sha256(r.encode()).hexdigest())[:n])


class Benchmark:
    """A built benchmark, checked against its manifest when opened (``verify.py``): a
    changed, missing or unlisted table is refused with a one-line error naming it.
    ``sha256`` is the benchmark's identity, a hash over all its files' hashes."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        self.sha256 = verified_identity(self.dir)

    def splits(self, table: str) -> list[str]:
        """The non-empty file splits of a split table, in the published order."""
        if table not in SPLIT_TABLES:
            raise ValueError(f"{table!r} has no splits; split tables: {', '.join(SPLIT_TABLES)}")
        return [s for s in FILE_SPLITS if (self.dir / table_path(table, s)).exists()]

    def has(self, table: str, split: str | None = None) -> bool:
        return (self.dir / table_path(table, split)).exists()

    def read(self, table: str, split: str | None = None, columns: list[str] | None = None,
             repos: Iterable[str] | None = None, where: dict[str, object] | None = None
             ) -> pa.Table:
        """A table (one split of a split table), only ``columns``, only rows of ``repos`` and
        whose columns equal ``where``'s values (a list or set value means "one of")."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
        path = self.dir / table_path(table, split)
        if not path.exists():
            if table in SPLIT_TABLES:
                available = ", ".join(self.splits(table)) or "none"
                raise MissingTableError(f"{path}: split {split!r} of {table!r} is empty or was "
                                        f"not built (available: {available})")
            raise MissingTableError(f"{path}: this benchmark has no {table!r} table; it was "
                                    f"built by an older version or without it: rebuild it "
                                    f"with 'repopeftbench build'")
        filters = []
        if repos is not None:
            filters.append(("repo_id", "in", sorted(set(repos))))
        for column, value in (where or {}).items():
            if isinstance(value, (list, tuple, set, frozenset)):
                filters.append((column, "in", sorted(value)))
            else:
                filters.append((column, "==", value))
        schema = TABLES[table]
        for name in (columns or []) + [f[0] for f in filters]:
            if name not in schema.names:
                raise ValueError(f"table {table!r} has no column {name!r}; columns: "
                                 f"{', '.join(schema.names)}")
        if repos is not None and not filters[0][2]:
            return schema.empty_table().select(columns) if columns else schema.empty_table()
        return pq.read_table(path, columns=columns, filters=filters or None)

    def rows(self, table: str, split: str | None = None, **kwargs) -> list[dict]:
        return self.read(table, split, **kwargs).to_pylist()

    def tasks(self, config: str, split: str, limit: int | None = None,
              columns: list[str] | None = None, repos: Iterable[str] | None = None,
              sample: str = "hash", max_repos: int | None = None) -> list[dict]:
        """Rows of a task split, in (repo_id, task_id) order. ``max_repos`` keeps the tasks
        of the split's first ``max_repos`` repositories (``first_repos``). ``limit`` takes a fixed
        pseudo-random sample: the first tasks by task-id hash (``sample="hash"``), or, with
        ``sample="per_repo"``, tasks dealt round-robin over the repositories (each one's in
        hash order), so that a small sample covers as many repositories as it can. Either
        sample is nested: a larger limit contains the smaller one."""
        if sample not in SAMPLES:
            raise ValueError(f"unknown sample {sample!r}; choose from {', '.join(SAMPLES)}")
        if config not in TASK_CONFIGS:
            raise ValueError(f"unknown config {config!r}; choose from {', '.join(TASK_CONFIGS)}")
        if split not in FILE_SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(FILE_SPLITS)}")
        if columns is not None:
            columns = list(dict.fromkeys(["task_id", "repo_id", *columns]))
        rows = self.rows(config, split, columns=columns, repos=repos)
        if max_repos:
            keep = first_repos((r["repo_id"] for r in rows), max_repos)
            rows = [r for r in rows if r["repo_id"] in keep]
        if limit is not None and limit < len(rows):
            rows.sort(key=lambda r: hashlib.sha256(r["task_id"].encode()).hexdigest())
            if sample == "per_repo":
                rank: dict[str, int] = {}
                dealt = []
                for r in rows:                     # (turn within its repository, repository)
                    rank[r["repo_id"]] = rank.get(r["repo_id"], -1) + 1
                    dealt.append((rank[r["repo_id"]], r["repo_id"], r))
                dealt.sort(key=lambda x: (x[0], x[1]))
                rows = [r for _, _, r in dealt]
            rows = sorted(rows[:limit], key=lambda r: (r["repo_id"], r["task_id"]))
        return rows

    def train_tasks(self, config: str, columns: list[str] | None = None,
                    repos: Iterable[str] | None = None) -> list[dict]:
        """The training split of a track (empty when the build has none)."""
        if not self.has(config, "train"):
            return []
        return self.tasks(config, "train", columns=columns, repos=repos)

    def context(self, repo_id: str, columns: list[str] | None = None) -> list[dict]:
        """One repository's context files (non-test .py/.md/.rst), in path order."""
        return self.rows("context", columns=columns, repos=[repo_id])

    def commits(self, repo_id: str, columns: list[str] | None = None) -> list[dict]:
        """One repository's kept commits over every split, in history order."""
        out: list[dict] = []
        for split in self.splits("commits"):
            out += self.rows("commits", split, columns=columns, repos=[repo_id])
        if out and "commit_index" in out[0]:
            out.sort(key=lambda c: c["commit_index"])
        return out

    def repos(self, columns: list[str] | None = None) -> list[dict]:
        return self.rows("repos", columns=columns)
