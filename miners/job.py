"""Mining one repository for every requested track, with per-track caching.

Results go to ``WORK/<part>/<name>.*`` atomically, metadata last, so a finished
repository survives any interruption. ``part`` is a track (static, evolution) or the
context table, which every build writes. The static track and the context cache on
(snapshot, configuration); the evolution track also keeps its replay state, so a
repository that gained commits is continued from where the last build stopped.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from repopeftbench.io import publish, sha256_file, write_json, write_parquet
from repopeftbench.schema import (COMMITS, CONTEXT, EVOLUTION, SCHEMA_VERSION, STATIC,
                                  table_from_rows, without_splits)
from repopeftbench.splits import iso_time, parse_time

from .acquire import acquire, safe_name
from .context_miner import mine_context
from .evolution_miner import EvolutionState, mine_evolution
from .git import GitError, GitRepo
from .repolist import RepoSpec
from .static_miner import mine_static

MINED_STATIC = without_splits(STATIC)
MINED_COMMITS = without_splits(COMMITS)
MINED_EVOLUTION = without_splits(EVOLUTION)
CONTEXT_PART = "context"


@dataclass(frozen=True)
class RepoInfo:
    """What every track needs to know about a repository before mining it."""
    head: str          # newest commit considered (pinned, or HEAD)
    snapshot: str      # static snapshot / end of the replayed history (cutoff applied)
    created_at: str | None
    is_ood: bool
    # the root of head's first-parent line (duplicate check: a copy or fork shares it; a
    # repository that merged a shared template's history, e.g. jaraco/skeleton, does not)
    roots: tuple[str, ...] = ()
    tree: str = ""                # the snapshot's tree (duplicate check)


@dataclass
class PartResult:
    """The outcome of mining one part (a track or the context) of one repository: the
    work file ``WORK/<part>/<name>.json`` and what assembly reads back."""
    repo_id: str
    status: str                     # "ok" or "failed"
    reason: str | None = None       # why it failed
    n_tasks: int = 0                # rows written (tasks, or files for the context)
    filter_counts: dict[str, int] = field(default_factory=dict)
    file_skips: list[list[str]] = field(default_factory=list)   # [path, reason]
    key: dict | None = None         # what the cached result depends on
    # static track and context: the snapshot
    commit_sha: str | None = None
    commit_timestamp: int | None = None
    commit_idx: int | None = None
    n_test_files: int | None = None
    n_candidates: int | None = None
    # evolution track
    head: str | None = None
    n_commits: int | None = None
    n_kept_commits: int | None = None
    # SHA-256 of the work files this result stands for ("rows", "commits", "state"):
    # a cached part is used only when they all still match
    files: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PartResult":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def failed(cls, repo_id: str, reason: str, **extra) -> "PartResult":
        return cls(repo_id=repo_id, status="failed", reason=reason, **extra)


@dataclass
class RepoResult:
    repo_id: str
    info: RepoInfo | None
    parts: dict[str, PartResult]    # track name or "context" -> result


def paths(work_root: Path, part: str, repo_id: str) -> dict[str, Path]:
    base = work_root / part / safe_name(repo_id)
    return {"meta": base.with_suffix(".json"), "rows": base.with_suffix(".parquet"),
            "commits": base.with_suffix(".commits.parquet"), "state": base.with_suffix(".state.json")}


def resolve_repo(repo: GitRepo, spec: RepoSpec, cutoff: str | None) -> RepoInfo | str:
    """The commits to mine, or the reason there are none."""
    head = repo.resolve(spec.sha or "HEAD")
    if head is None:
        if spec.sha:
            return f"pinned sha {spec.sha} not found in {spec.url}"
        return f"{spec.url}: empty repository (no commits)"
    root_time = repo.root_commit_time(head) if not spec.created_at else None
    created_at = spec.created_at or (iso_time(root_time) if root_time is not None else None)
    cutoff_ts = parse_time(cutoff) if cutoff else None
    if cutoff_ts is not None and spec.split is None and created_at is None:
        return "no usable creation date: created_at not given and every root commit's time " \
               "is out of range"
    is_ood = spec.split == "ood" or (
        spec.split is None and cutoff_ts is not None and parse_time(created_at) > cutoff_ts)
    snapshot = head
    if cutoff_ts is not None and not is_ood and not spec.sha:
        snapshot = repo.last_commit_before(head, cutoff_ts)
        if snapshot is None:
            return f"no commit before the cutoff {cutoff}"
    return RepoInfo(head, snapshot, created_at, is_ood, (repo.first_parent_root(head),),
                    repo.tree_of(snapshot))


def _load_meta(path: Path) -> PartResult | None:
    """A cached part result, or None when absent or unreadable (e.g. an older format)."""
    try:
        return PartResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, RecursionError):
        if path.exists():
            notice(f"{path}: cached part is unreadable; mining it again")
        return None


def notice(message: str) -> None:
    """A one-line notice on stderr (the build goes on)."""
    print(f"notice: {message}", file=sys.stderr, flush=True)


def _cached(p: dict[str, Path], key: dict) -> PartResult | None:
    """The cached result of this part when its key matches and every work file it stands
    for still has its checksum; a damaged one is reported and mined again."""
    cached = _load_meta(p["meta"])
    if cached is None or cached.key != key:
        return None
    if cached.files is None:
        return None                 # written before parts carried checksums
    for name, digest in cached.files.items():
        f = p[name]
        if not f.exists() or sha256_file(f) != digest:
            notice(f"{f}: cached part is damaged (checksum mismatch); mining it again")
            return None
    return cached


def _save(p: dict[str, Path], result: PartResult, files: tuple[str, ...] = ()) -> PartResult:
    """Write the part's metadata last, with the checksums of its work files ``files``."""
    result.files = {name: sha256_file(p[name]) for name in files}
    write_json(p["meta"], result.to_dict())
    return result


def mine_static_track(repo: GitRepo, spec: RepoSpec, info: RepoInfo, config,
                      work_root: Path) -> PartResult:
    p = paths(work_root, "static", spec.repo_id)
    key = {"location": spec.location, "snapshot": info.snapshot, "is_ood": info.is_ood,
           "static": config.static.to_dict(), "seed": config.seed, "schema": SCHEMA_VERSION}
    cached = _cached(p, key)
    if cached:
        return cached
    commit_idx = repo.first_parent_index(info.snapshot)
    result = mine_static(repo, info.snapshot, spec.repo_id, config.static, commit_idx, config.seed)
    base = dict(key=key, commit_sha=info.snapshot, commit_timestamp=repo.commit_time(info.snapshot),
                commit_idx=commit_idx, n_test_files=result.n_test_files,
                n_candidates=result.n_candidates,
                filter_counts=dict(sorted(result.filter_counts.items())),
                file_skips=[list(s) for s in result.file_skips])
    if result.n_test_files == 0:
        meta = PartResult.failed(spec.repo_id, "no test files (test_*.py, *_test.py or under "
                                               "tests/)", **base)
    elif not result.rows:
        meta = PartResult.failed(spec.repo_id, f"no tasks after filtering ({result.n_candidates} "
                                               f"candidate assertions in {result.n_test_files} "
                                               f"test files)", **base)
    else:
        write_parquet(p["rows"], table_from_rows(result.rows, MINED_STATIC))
        meta = PartResult(spec.repo_id, "ok", n_tasks=len(result.rows), **base)
    return _save(p, meta, ("rows",) if meta.ok else ())


def mine_context_part(repo: GitRepo, spec: RepoSpec, info: RepoInfo, config,
                      work_root: Path) -> PartResult:
    p = paths(work_root, CONTEXT_PART, spec.repo_id)
    key = {"location": spec.location, "snapshot": info.snapshot,
           "context": config.context.to_dict(), "schema": SCHEMA_VERSION}
    cached = _cached(p, key)
    if cached:
        return cached
    result = mine_context(repo, info.snapshot, spec.repo_id, config.context)
    base = dict(key=key, commit_sha=info.snapshot,
                filter_counts=dict(sorted(result.counts.items())),
                file_skips=[list(s) for s in result.file_skips])
    if not result.rows:
        meta = PartResult.failed(spec.repo_id, "no non-test .py, .md or .rst file", **base)
    else:
        write_parquet(p["rows"], table_from_rows(result.rows, CONTEXT))
        meta = PartResult(spec.repo_id, "ok", n_tasks=len(result.rows), **base)
    return _save(p, meta, ("rows",) if meta.ok else ())


def _is_ancestor(repo: GitRepo, old: str, new: str) -> bool:
    proc = repo._run_raw(["merge-base", "--is-ancestor", old, new], check=False)
    return proc.returncode == 0


def mine_evolution_track(repo: GitRepo, spec: RepoSpec, info: RepoInfo, config,
                         work_root: Path) -> PartResult:
    p = paths(work_root, "evolution", spec.repo_id)
    key = {"location": spec.location, "is_ood": info.is_ood,
           "evolution": config.evolution.to_dict(), "schema": SCHEMA_VERSION}
    if repo.is_shallow():
        return _save(p, PartResult.failed(
            spec.repo_id, "history incomplete: shallow clone (fetch with --unshallow)",
            key=key, head=info.snapshot))
    cached = _cached(p, key)
    state, counts = EvolutionState(), {}
    previous: bool = False
    if cached and "state" in cached.files:
        if cached.head == info.snapshot:
            return cached
        old_state = EvolutionState.from_dict(json.loads(p["state"].read_text(encoding="utf-8")))
        if old_state.head and _is_ancestor(repo, old_state.head, info.snapshot):
            state = old_state  # incremental: continue the replay from the last build
            counts = dict(cached.filter_counts)
            previous = cached.ok
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
        meta = PartResult(spec.repo_id, "ok", n_tasks=n_tasks, **base)
    else:
        for stale in (p["rows"], p["commits"]):
            stale.unlink(missing_ok=True)
        meta = PartResult.failed(spec.repo_id, f"no commit adds or changes an assertion in a test "
                                               f"file ({result.state.n_commits} commits replayed)",
                                 **base)
    write_json(p["state"], result.state.to_dict())
    return _save(p, meta, ("rows", "commits", "state") if meta.ok else ("state",))


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
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)                     # a unique name: a stray process cannot collide
        self._tmp = Path(tmp)
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
            publish(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


PART_MINERS: dict[str, Callable[..., PartResult]] = {
    "static": mine_static_track, "evolution": mine_evolution_track,
    CONTEXT_PART: mine_context_part}


def parts_of(config) -> tuple[str, ...]:
    """What a build mines per repository: its tracks, then the context table."""
    return (*config.tracks, CONTEXT_PART)


def identify(spec: RepoSpec, config, cache_dir: Path, refresh: bool = False) -> RepoInfo | str:
    """Acquire ``spec`` and resolve what to mine (with its roots and snapshot tree, which
    the build compares to find one repository listed twice), or the reason why not.
    Never raises for a problem of the repository."""
    try:
        with acquire(spec, cache_dir, refresh) as repo:
            return resolve_repo(repo, spec, config.cutoff)
    except GitError as exc:
        return str(exc)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def mine_repo(spec: RepoSpec, config, work_root: Path, cache_dir: Path,
              info: RepoInfo | str) -> RepoResult:
    """Mine ``spec`` for ``config.tracks`` and the context table, at what ``identify``
    resolved (a string: the reason there is nothing to mine).

    Never raises for a problem of the repository: each part's result says ok or why not.
    """
    out = RepoResult(spec.repo_id, None, {})

    def fail_all(reason: str) -> RepoResult:
        for part in parts_of(config):
            out.parts[part] = _save(paths(work_root, part, spec.repo_id),
                                    PartResult.failed(spec.repo_id, reason))
        return out

    if isinstance(info, str):
        return fail_all(info)
    try:
        with acquire(spec, cache_dir, rebuild_snapshot=False) as repo:
            out.info = info
            for part in parts_of(config):
                try:
                    out.parts[part] = PART_MINERS[part](repo, spec, info, config, work_root)
                except GitError as exc:
                    out.parts[part] = PartResult.failed(spec.repo_id, str(exc))
                except Exception as exc:  # a bug or damaged input: record it, keep building
                    out.parts[part] = PartResult.failed(spec.repo_id, f"{type(exc).__name__}: {exc}")
    except GitError as exc:
        return fail_all(str(exc))
    except Exception as exc:
        return fail_all(f"{type(exc).__name__}: {exc}")
    return out


def duplicates(specs: list[RepoSpec], infos: dict[str, RepoInfo | str]) -> dict[str, str]:
    """repo_id -> reason, for every repository that is an earlier-listed one again (a
    shared root commit, or the same snapshot tree): the first in list order is kept."""
    seen: dict[tuple[str, str], str] = {}
    out: dict[str, str] = {}
    for spec in specs:
        info = infos.get(spec.repo_id)
        if not isinstance(info, RepoInfo):
            continue
        keys = [("root commit", r) for r in info.roots] + [("snapshot tree", info.tree)]
        first = next(((what, sha, seen[(what, sha)]) for what, sha in keys if (what, sha) in seen),
                     None)
        if first is not None:
            what, sha, other = first
            out[spec.repo_id] = (f"duplicate of {other} (same {what} {sha[:12]}); listed twice, "
                                 f"mined once")
            continue
        for k in keys:
            seen[k] = spec.repo_id
    return out
