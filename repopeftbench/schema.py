"""The one contract between pipeline stages: Arrow schemas of every table.

Miners write these tables, methods and evaluators read them. A change to any
column bumps ``SCHEMA_VERSION``; the version is stored in every Parquet file's
schema metadata and in the build manifest.
"""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1.2"

# Values of the two split axes stored on every row (SPEC section 6).
CROSS_REPO_SPLITS = ("train", "cr_val", "cr_test", "ood")
IN_REPO_SPLITS = ("train", "val", "test")

# Assertion families (SPEC section 4) and target types used for stratification.
ASSERTION_TYPES = ("assert", "unittest", "raises", "approx", "numpy")
TARGET_TYPES = ("numeric", "string", "bool_none", "variable", "collection", "call", "complex")

# Published file splits: name -> (cross_repo_split, in_repo_split or None for any).
FILE_SPLITS: dict[str, tuple[str, str | None]] = {
    "train": ("train", "train"),
    "validation_in_repo": ("train", "val"),
    "test_in_repo": ("train", "test"),
    "validation_cross_repo": ("cr_val", None),
    "test_cross_repo": ("cr_test", None),
    "test_ood": ("ood", None),
}


def _schema(fields: list[pa.Field], table: str) -> pa.Schema:
    return pa.schema(fields, metadata={"repopeftbench.table": table,
                                       "repopeftbench.schema_version": SCHEMA_VERSION})


REPOS = _schema([
    pa.field("repo_id", pa.string(), nullable=False),
    pa.field("url", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # remote, local (git) or snapshot
    pa.field("commit_sha", pa.string()),          # snapshot mined (null when failed)
    pa.field("commit_timestamp", pa.int64()),     # committer time of the snapshot, UTC seconds
    pa.field("license", pa.string()),
    pa.field("stars", pa.int64()),
    pa.field("created_at", pa.string()),          # ISO-8601, from the list or the root commit
    pa.field("cross_repo_split", pa.string()),
    pa.field("status", pa.string(), nullable=False),  # "ok" or "failed"
    pa.field("failure_reason", pa.string()),
    pa.field("n_test_files", pa.int32()),
    pa.field("n_tasks", pa.int32()),              # static tasks
    pa.field("n_commits", pa.int32()),            # first-parent commits replayed
    pa.field("n_kept_commits", pa.int32()),
    pa.field("n_evolution_tasks", pa.int32()),
], "repos")

STATIC = _schema([
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("repo_id", pa.string(), nullable=False),
    pa.field("commit_sha", pa.string(), nullable=False),
    pa.field("commit_idx", pa.int32(), nullable=False),  # first-parent position of the snapshot
    pa.field("test_file", pa.string(), nullable=False),
    pa.field("lineno", pa.int32(), nullable=False),       # 1-based line of the target start
    pa.field("col_offset", pa.int32(), nullable=False),   # byte column of the target start
    pa.field("byte_offset", pa.int64(), nullable=False),  # byte offset of the cut in the file
    pa.field("assertion_type", pa.string(), nullable=False),
    pa.field("target_type", pa.string(), nullable=False),
    pa.field("test_class", pa.string()),                  # dotted for nested classes
    pa.field("test_function", pa.string(), nullable=False),
    pa.field("prefix", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("knowledge_source", pa.string(), nullable=False),  # prefix, repository or none
    pa.field("cross_repo_split", pa.string(), nullable=False),
    pa.field("in_repo_split", pa.string(), nullable=False),
], "static")

COMMITS = _schema([
    pa.field("repo_id", pa.string(), nullable=False),
    pa.field("cross_repo_split", pa.string(), nullable=False),
    pa.field("commit_index", pa.int32(), nullable=False),
    pa.field("commit_sha", pa.string(), nullable=False),
    pa.field("commit_timestamp", pa.int64()),     # null when git's value is out of range
    pa.field("author_timestamp", pa.int64()),
    pa.field("in_repo_split", pa.string(), nullable=False),
    pa.field("production_code_diff", pa.string(), nullable=False),
    pa.field("n_new_assertions", pa.int32(), nullable=False),
    pa.field("n_added_assertions", pa.int32(), nullable=False),
    pa.field("n_modified_assertions", pa.int32(), nullable=False),
], "commits")

EVOLUTION = _schema([
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("repo_id", pa.string(), nullable=False),
    pa.field("cross_repo_split", pa.string(), nullable=False),
    pa.field("commit_index", pa.int32(), nullable=False),
    pa.field("commit_sha", pa.string(), nullable=False),
    pa.field("in_repo_split", pa.string(), nullable=False),
    pa.field("test_file", pa.string(), nullable=False),
    pa.field("lineno", pa.int32(), nullable=False),
    pa.field("col_offset", pa.int32(), nullable=False),
    pa.field("assertion_type", pa.string(), nullable=False),
    pa.field("target_type", pa.string(), nullable=False),
    pa.field("test_class", pa.string()),
    pa.field("test_function", pa.string(), nullable=False),
    pa.field("event", pa.string(), nullable=False),        # "added" or "modified"
    pa.field("prefix", pa.string(), nullable=False),       # whole file up to the cut
    pa.field("target", pa.string(), nullable=False),
    pa.field("knowledge_source", pa.string(), nullable=False),  # prefix, repository or none
], "evolution")

CONTEXT = _schema([
    pa.field("repo_id", pa.string(), nullable=False),
    pa.field("commit_sha", pa.string(), nullable=False),   # the static snapshot commit
    pa.field("path", pa.string(), nullable=False),
    pa.field("size", pa.int64(), nullable=False),           # bytes
    pa.field("content", pa.string(), nullable=False),
], "context")

TABLES: dict[str, pa.Schema] = {"repos": REPOS, "static": STATIC, "commits": COMMITS,
                                "evolution": EVOLUTION, "context": CONTEXT}

# What every column means (the data card prints these; a test checks none is missing).
_TASK_COMMON = {
    "task_id": "stable id: hash of repository, file, class, function, family, target "
               "(and commit, on the evolution track)",
    "repo_id": "repository id from the list (usually owner/name)",
    "commit_sha": "commit the task was read at",
    "test_file": "path of the test file in the repository",
    "lineno": "1-based line where the target starts",
    "col_offset": "byte column where the target starts",
    "assertion_type": "family: assert, unittest, raises, approx or numpy",
    "target_type": "numeric, string, bool_none, variable, collection, call or complex",
    "test_class": "enclosing class(es), dotted when nested; null for a module-level test",
    "test_function": "enclosing test function (the outermost function)",
    "target": "what the model must produce, flattened to one line",
    "knowledge_source": "where the target's pieces (identifiers, numbers, string texts; "
                        "keywords and builtins left out) occur: prefix (all in the prefix), "
                        "repository (the rest in the repository's non-test files at the static "
                        "snapshot, the context table) or none (some piece occurs nowhere: "
                        "computed)",
    "cross_repo_split": "repository-level split: train, cr_val, cr_test or ood",
    "in_repo_split": "split within the repository: train, val or test",
}
COLUMN_DOCS: dict[str, dict[str, str]] = {
    "repos": {
        "repo_id": _TASK_COMMON["repo_id"],
        "url": "where it was read from (a remote URL, or a local path on the build machine)",
        "source": "remote (cloned), local (a git repository read in place) or snapshot (a "
                  "directory without git history, read as one commit of its files)",
        "commit_sha": "static snapshot (the last commit before the cutoff, or the pinned one)",
        "commit_timestamp": "committer time of the snapshot, UTC seconds",
        "license": "licence from the list", "stars": "stars from the list",
        "created_at": "creation date (from the list, else the root commit)",
        "cross_repo_split": _TASK_COMMON["cross_repo_split"],
        "status": "ok when at least one track gave tasks, else failed",
        "failure_reason": "why a track gave no tasks",
        "n_test_files": "test files at the snapshot", "n_tasks": "static tasks",
        "n_commits": "first-parent commits replayed", "n_kept_commits": "commits kept",
        "n_evolution_tasks": "evolution tasks after the caps",
    },
    "static": {**_TASK_COMMON,
               "commit_idx": "first-parent position of the snapshot (0 = root commit)",
               "byte_offset": "byte offset of the cut in the file",
               "prefix": "structured prefix: imports and module statements, class set-up, "
                         "helpers and fixtures, the test function up to the cut"},
    "commits": {
        "repo_id": _TASK_COMMON["repo_id"], "cross_repo_split": _TASK_COMMON["cross_repo_split"],
        "commit_index": "first-parent position of the commit (0 = root commit)",
        "commit_sha": "the kept commit",
        "commit_timestamp": "committer time, UTC seconds (null when out of range: years 1-9999)",
        "author_timestamp": "author time, UTC seconds (null when out of range)",
        "in_repo_split": "chronological split of the repository's kept commits",
        "production_code_diff": "unified diff of non-test .py/.md/.rst files since the previous "
                                "kept commit (the empty tree for the first)",
        "n_new_assertions": "assertion events of the commit (added + modified)",
        "n_added_assertions": "assertions added", "n_modified_assertions": "assertions changed "
                                                                           "in place",
    },
    "evolution": {**_TASK_COMMON,
                  "commit_index": "first-parent position of the commit",
                  "event": "added or modified",
                  "prefix": "the whole test file at that commit, up to the cut"},
    "context": {
        "repo_id": _TASK_COMMON["repo_id"], "commit_sha": "the static snapshot commit",
        "path": "file path", "size": "bytes", "content": "file text (UTF-8)",
    },
}

# Tables of tasks (what methods are evaluated on) and tables stored per file split.
TASK_TABLES = ("static", "evolution")
SPLIT_TABLES = ("static", "evolution", "commits")
# Tables stored as one file at the top of the benchmark, with one split of the same name.
SINGLE_FILE_TABLES = ("repos", "context")

# Files of a context table: what methods may read as "the repository's code".
CONTEXT_SUFFIXES = (".py", ".md", ".rst")


def table_path(table: str, split: str | None = None) -> str:
    """Relative path of a table file in a built benchmark: ``{table}/{split}.parquet`` for
    split tables, ``{table}.parquet`` for single-file tables."""
    if table in SPLIT_TABLES:
        if split not in FILE_SPLITS:
            raise ValueError(f"unknown split {split!r} of table {table!r}; "
                             f"choose from {', '.join(FILE_SPLITS)}")
        return f"{table}/{split}.parquet"
    if table in SINGLE_FILE_TABLES:
        return f"{table}.parquet"
    raise ValueError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")


def without_splits(schema: pa.Schema) -> pa.Schema:
    """The schema of rows as a miner produces them, before splits and the labels that
    assembly computes (knowledge source) are assigned."""
    for name in ("cross_repo_split", "in_repo_split", "knowledge_source"):
        if name in schema.names:
            schema = schema.remove(schema.get_field_index(name))
    return schema


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly ``schema``'s columns; a missing or extra key is a bug."""
    names = schema.names
    for i, row in enumerate(rows):
        if set(row) != set(names):
            missing, extra = set(names) - set(row), set(row) - set(names)
            raise ValueError(f"row {i} does not match schema "
                             f"{schema.metadata[b'repopeftbench.table'].decode()}: "
                             f"missing={sorted(missing)} extra={sorted(extra)}")
    columns = {n: [r[n] for r in rows] for n in names}
    return pa.table(columns, schema=schema)
