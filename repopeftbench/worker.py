"""Mining one repository for every requested track, with per-track caching.

Results go to ``WORK/<track>/<name>.*`` atomically, metadata last, so a finished
repository survives any interruption. The static track caches on (snapshot,
configuration); the evolution track also keeps its replay state, so a repository
that gained commits is continued from where the last build stopped.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from miners.acquire import acquire, safe_name
from miners.evolution_miner import EvolutionState, mine_evolution
from miners.git import GitError, GitRepo
from miners.static_miner import mine_static

from .io import write_json, write_parquet
from .repolist import RepoSpec
from .schema import COMMITS, EVOLUTION, SCHEMA_VERSION, STATIC, table_from_rows
from .splits import iso_time, parse_time

_SPLIT_COLUMNS = ("cross_repo_split", "in_repo_split")


def without_splits(schema):
    for name in _SPLIT_COLUMNS:
        if name in schema.names:
            schema = schema.remove(schema.get_field_index(name))
    return schema


MINED_STATIC = without_splits(STATIC)
MINED_COMMITS = without_splits(COMMITS)
MINED_EVOLUTION = without_splits(EVOLUTION)


@dataclass(frozen=True)
class RepoInfo:
    """What both tracks need to know about a repository before mining it."""
    head: str          # newest commit considered (pinned, or HEAD)
    snapshot: str      # static snapshot / end of the replayed history (cutoff applied)
    created_at: str
    is_ood: bool


def paths(work_root: Path, track: str, repo_id: str) -> dict[str, Path]:
    base = work_root / track / safe_name(repo_id)
    return {"meta": base.with_suffix(".json"), "rows": base.with_suffix(".parquet"),
            "commits": base.with_suffix(".commits.parquet"), "state": base.with_suffix(".state.json")}


def failed_meta(spec: RepoSpec, reason: str, **extra) -> dict:
    meta = {"repo_id": spec.repo_id, "status": "failed", "reason": reason, "n_tasks": 0,
            "filter_counts": {}, "file_skips": []}
    meta.update(extra)
    return meta


def resolve_repo(repo: GitRepo, spec: RepoSpec, cutoff: str | None) -> RepoInfo | str:
    """The commits to mine, or the reason there are none."""
    head = repo.resolve(spec.sha or "HEAD")
    if head is None:
        if spec.sha:
            return f"pinned sha {spec.sha} not found in {spec.url}"
        return f"{spec.url}: empty repository (no commits)"
    created_at = spec.created_at or iso_time(repo.root_commit_time(head))
    cutoff_ts = parse_time(cutoff) if cutoff else None
    is_ood = spec.split == "ood" or (
        spec.split is None and cutoff_ts is not None and parse_time(created_at) > cutoff_ts)
    snapshot = head
    if cutoff_ts is not None and not is_ood and not spec.sha:
        snapshot = repo.last_commit_before(head, cutoff_ts)
        if snapshot is None:
            return f"no commit before the cutoff {cutoff}"
    return RepoInfo(head, snapshot, created_at, is_ood)


def _load_meta(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def mine_static_track(repo: GitRepo, spec: RepoSpec, info: RepoInfo, config, work_root: Path) -> dict:
    p = paths(work_root, "static", spec.repo_id)
    key = {"location": spec.location, "snapshot": info.snapshot, "is_ood": info.is_ood,
           "static": config.static.to_dict(), "seed": config.seed, "schema": SCHEMA_VERSION}
    cached = _load_meta(p["meta"])
    if cached and cached.get("key") == key and (cached["status"] != "ok" or p["rows"].exists()):
        return cached
    commit_idx = repo.first_parent_index(info.snapshot)
    result = mine_static(repo, info.snapshot, spec.repo_id, config.static, commit_idx, config.seed)
    base = dict(key=key, commit_sha=info.snapshot, commit_timestamp=repo.commit_time(info.snapshot),
                commit_idx=commit_idx, n_test_files=result.n_test_files,
                n_candidates=result.n_candidates,
                filter_counts=dict(sorted(result.filter_counts.items())),
                file_skips=[list(s) for s in result.file_skips])
    if result.n_test_files == 0:
        meta = failed_meta(spec, "no test files (test_*.py, *_test.py or under tests/)", **base)
    elif not result.rows:
        meta = failed_meta(spec, f"no tasks after filtering ({result.n_candidates} candidate "
                                 f"assertions in {result.n_test_files} test files)", **base)
    else:
        write_parquet(p["rows"], table_from_rows(result.rows, MINED_STATIC))
        meta = {"repo_id": spec.repo_id, "status": "ok", "reason": None,
                "n_tasks": len(result.rows), **base}
    write_json(p["meta"], meta)
    return meta


def _is_ancestor(repo: GitRepo, old: str, new: str) -> bool:
    proc = repo._run_raw(["merge-base", "--is-ancestor", old, new], check=False)
    return proc.returncode == 0


def mine_evolution_track(repo: GitRepo, spec: RepoSpec, info: RepoInfo, config,
                         work_root: Path) -> dict:
    p = paths(work_root, "evolution", spec.repo_id)
    key = {"location": spec.location, "is_ood": info.is_ood,
           "evolution": config.evolution.to_dict(), "schema": SCHEMA_VERSION}
    if repo.is_shallow():
        meta = failed_meta(spec, "history incomplete: shallow clone (fetch with --unshallow)",
                           key=key, head=info.snapshot)
        write_json(p["meta"], meta)
        return meta
    cached = _load_meta(p["meta"])
    state, counts = EvolutionState(), {}
    previous: bool = False
    if cached and cached.get("key") == key and p["state"].exists():
        if cached.get("head") == info.snapshot:
            return cached
        old_state = EvolutionState.from_dict(json.loads(p["state"].read_text()))
        if old_state.head and _is_ancestor(repo, old_state.head, info.snapshot):
            state = old_state  # incremental: continue the replay from the last build
            counts = dict(cached.get("filter_counts", {}))
            previous = p["commits"].exists() and p["rows"].exists()
    with Spool(p["rows"], MINED_EVOLUTION) as tasks, Spool(p["commits"], MINED_COMMITS) as commits:
        if previous:
            tasks.copy_from(p["rows"])
            commits.copy_from(p["commits"])
        result = mine_evolution(repo, info.snapshot, spec.repo_id, config.evolution, state,
                                task_sink=tasks.add, commit_sink=commits.add)
        n_tasks, n_kept = tasks.n_rows, commits.n_rows
        if not n_kept:
            tasks.discard()
            commits.discard()
    for name, n in result.counts.items():
        counts[name] = counts.get(name, 0) + n
    base = dict(key=key, head=info.snapshot, n_commits=result.state.n_commits,
                n_kept_commits=n_kept, filter_counts=dict(sorted(counts.items())))
    if n_kept:
        meta = {"repo_id": spec.repo_id, "status": "ok", "reason": None, "n_tasks": n_tasks, **base}
    else:
        for stale in (p["rows"], p["commits"]):
            stale.unlink(missing_ok=True)
        meta = failed_meta(spec, f"no commit adds or changes an assertion in a test file "
                                 f"({result.state.n_commits} commits replayed)", **base)
    write_json(p["state"], result.state.to_dict())
    write_json(p["meta"], meta)
    return meta


class Spool:
    """Rows streamed to a Parquet file in chunks: memory stays bounded however long the
    history. The file replaces ``path`` atomically when the spool closes."""

    CHUNK = 1000

    def __init__(self, path: Path, schema):
        self.path, self.schema = path, schema
        self.n_rows = 0
        self._buffer: list[dict] = []
        self._discard = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_name(f".{path.name}.tmp")
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")

    def add(self, rows: list[dict]) -> None:
        self._buffer.extend(rows)
        self.n_rows += len(rows)
        if len(self._buffer) >= self.CHUNK:
            self._flush()

    def copy_from(self, path: Path) -> None:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=self.CHUNK):
            self._writer.write_batch(batch)
            self.n_rows += batch.num_rows

    def discard(self) -> None:
        self._discard = True

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(table_from_rows(self._buffer, self.schema))
            self._buffer = []

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self._flush()
        self._writer.close()
        if exc_type is None and not self._discard:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


TRACK_MINERS: dict[str, Callable[..., dict]] = {"static": mine_static_track,
                                                "evolution": mine_evolution_track}


def mine_repo(spec: RepoSpec, config, work_root: Path, cache_dir: Path,
              refresh: bool = False) -> dict:
    """Mine ``spec`` for ``config.tracks``; returns {"repo_id", "info", "tracks": {track: meta}}.

    Never raises for a problem of the repository: each track's meta says ok or why not.
    """
    out: dict = {"repo_id": spec.repo_id, "info": None, "tracks": {}}

    def fail_all(reason: str) -> dict:
        for track in config.tracks:
            meta = failed_meta(spec, reason)
            write_json(paths(work_root, track, spec.repo_id)["meta"], meta)
            out["tracks"][track] = meta
        return out

    try:
        with acquire(spec, cache_dir, refresh) as repo:
            info = resolve_repo(repo, spec, config.cutoff)
            if isinstance(info, str):
                return fail_all(info)
            out["info"] = {"head": info.head, "snapshot": info.snapshot,
                           "created_at": info.created_at, "is_ood": info.is_ood}
            for track in config.tracks:
                try:
                    out["tracks"][track] = TRACK_MINERS[track](repo, spec, info, config, work_root)
                except GitError as exc:
                    out["tracks"][track] = failed_meta(spec, str(exc))
                except Exception as exc:  # a bug or damaged input: record it, keep building
                    out["tracks"][track] = failed_meta(spec, f"{type(exc).__name__}: {exc}")
    except GitError as exc:
        return fail_all(str(exc))
    except Exception as exc:
        return fail_all(f"{type(exc).__name__}: {exc}")
    return out
