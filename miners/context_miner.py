"""The context table: a repository's non-test code and docs at its static snapshot.

This is what methods may read as "the repository" (RAG chunks, the Code2LoRA encoder):
non-test ``.py``, ``.md`` and ``.rst`` files. Symlinks, submodules, binaries, non-UTF-8
files, missing blobs and files over the size limit are skipped and counted.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from repopeftbench.schema import CONTEXT_SUFFIXES

from .git import GitRepo
from .static_miner import decode_python, read_blob_checked
from .testfiles import is_test_file


@dataclass(frozen=True)
class ContextConfig:
    max_file_bytes: int = 1_000_000

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ContextResult:
    rows: list[dict]                                   # CONTEXT columns, in path order
    counts: Counter = field(default_factory=Counter)   # skip reason -> files
    file_skips: list[tuple[str, str]] = field(default_factory=list)


def is_context_file(path: str) -> bool:
    return path.endswith(CONTEXT_SUFFIXES) and not is_test_file(path)


def mine_context(repo: GitRepo, commit_sha: str, repo_id: str,
                 config: ContextConfig = ContextConfig()) -> ContextResult:
    entries = sorted((e for e in repo.ls_tree(commit_sha) if is_context_file(e.path)),
                     key=lambda e: e.path)
    result = ContextResult(rows=[])
    for entry in entries:
        data, reason, detail = read_blob_checked(repo, entry, config.max_file_bytes)
        if data is not None:
            reason, detail = decode_python(data)
        if reason is not None:
            result.counts[reason] += 1
            result.file_skips.append((entry.path, f"{reason}: {detail}"))
            continue
        assert data is not None
        result.rows.append({"repo_id": repo_id, "commit_sha": commit_sha, "path": entry.path,
                            "size": len(data), "content": data.decode("utf-8")})
    return result
