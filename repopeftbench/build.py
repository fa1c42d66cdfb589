"""``repopeftbench build``: repository list -> mined, split, documented Parquet tables.

Each repository is mined in a worker process; its result is written atomically to
``OUT/.work/`` as soon as it is done, so a build that is interrupted (even by
SIGKILL) resumes where it stopped and ends with files identical to an uninterrupted
build. A repository that fails is recorded with its reason and the build goes on.
"""
from __future__ import annotations

import json
import multiprocessing
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from miners.acquire import acquire, safe_name
from miners.git import GitError
from miners.static_miner import StaticMinerConfig, mine_static

from . import __version__
from .io import (atomic_write_text, canonical_json, read_parquet, sha256_file, sha256_text, write_json,
                 write_jsonl, write_parquet)
from .repolist import BadRow, RepoSpec, read_repo_list
from .schema import FILE_SPLITS, REPOS, SCHEMA_VERSION, STATIC, table_from_rows
from .splits import cross_repo_split, in_repo_split, iso_time, parse_time

TRACKS = ("static",)
_MINED_COLUMNS = [n for n in STATIC.names if n not in ("cross_repo_split", "in_repo_split")]
_MINED_SCHEMA = STATIC.remove(STATIC.get_field_index("in_repo_split")).remove(
    STATIC.get_field_index("cross_repo_split"))


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the output bytes (not the worker count or paths)."""
    tracks: tuple[str, ...] = ("static",)
    seed: int = 0
    cutoff: str | None = None
    cr_val_fraction: float = 0.1
    cr_test_fraction: float = 0.1
    in_repo_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    static: StaticMinerConfig = field(default_factory=StaticMinerConfig)

    def __post_init__(self) -> None:
        unknown = set(self.tracks) - set(TRACKS)
        if unknown:
            raise ValueError(f"unknown track(s) {sorted(unknown)}; available: {', '.join(TRACKS)}")
        if self.cutoff is not None:
            parse_time(self.cutoff)
        if abs(sum(self.in_repo_fractions) - 1.0) > 1e-9:
            raise ValueError(f"in_repo_fractions must sum to 1, got {self.in_repo_fractions}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tracks"] = list(self.tracks)
        d["in_repo_fractions"] = list(self.in_repo_fractions)
        d["schema_version"] = SCHEMA_VERSION
        return d

    def hash(self) -> str:
        return sha256_text(canonical_json(self.to_dict()))[:16]

    def miner_key(self) -> dict:
        """What a cached per-repository result depends on."""
        return {"static": self.static.to_dict(), "seed": self.seed, "cutoff": self.cutoff,
                "schema_version": SCHEMA_VERSION}


@dataclass
class BuildSummary:
    out_dir: Path
    n_repos: int
    n_ok: int
    n_failed: int
    split_sizes: dict[str, int]
    filter_counts: dict[str, int]
    failures: list[dict]


# ----------------------------------------------------------------------------- worker

def _failed(spec: RepoSpec, reason: str, **extra) -> dict:
    meta = {"repo_id": spec.repo_id, "url": spec.url, "status": "failed", "reason": reason,
            "commit_sha": None, "commit_timestamp": None, "commit_idx": None,
            "created_at": spec.created_at, "is_ood": spec.split == "ood", "n_test_files": 0,
            "n_tasks": 0, "n_candidates": 0, "filter_counts": {}, "file_skips": []}
    meta.update(extra)
    return meta


def mine_repo(spec: RepoSpec, config: BuildConfig, work_dir: Path, cache_dir: Path,
              refresh: bool = False) -> dict:
    """Mine one repository; writes ``work_dir/<name>.{parquet,json}`` and returns the meta."""
    name = safe_name(spec.repo_id)
    meta_path, rows_path = work_dir / f"{name}.json", work_dir / f"{name}.parquet"
    try:
        meta = _mine_repo(spec, config, meta_path, rows_path, cache_dir, refresh)
    except GitError as exc:
        meta = _failed(spec, str(exc))
    except Exception as exc:  # a bug or damaged input: record it, keep building
        meta = _failed(spec, f"{type(exc).__name__}: {exc}")
    if meta.get("_cached"):
        meta.pop("_cached")
        return meta
    write_json(meta_path, meta)
    return meta


def _mine_repo(spec: RepoSpec, config: BuildConfig, meta_path: Path, rows_path: Path,
               cache_dir: Path, refresh: bool) -> dict:
    with acquire(spec, cache_dir, refresh) as repo:
        head = repo.resolve(spec.sha or "HEAD")
        if head is None:
            if spec.sha:
                return _failed(spec, f"pinned sha {spec.sha} not found in {spec.url}")
            return _failed(spec, f"{spec.url}: empty repository (no commits)")
        created_at = spec.created_at or iso_time(repo.root_commit_time(head))
        cutoff_ts = parse_time(config.cutoff) if config.cutoff else None
        is_ood = spec.split == "ood" or (
            spec.split is None and cutoff_ts is not None and parse_time(created_at) > cutoff_ts)
        snapshot = head
        if cutoff_ts is not None and not is_ood and not spec.sha:
            snapshot = repo.last_commit_before(head, cutoff_ts)
            if snapshot is None:
                return _failed(spec, f"no commit before the cutoff {config.cutoff}",
                               created_at=created_at)
        key = {"location": spec.location, "snapshot": snapshot, "is_ood": is_ood, **config.miner_key()}
        if meta_path.exists():
            try:
                cached = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError):
                cached = None
            if cached and cached.get("key") == key and cached["status"] == "ok" and rows_path.exists():
                cached["_cached"] = True
                return cached
        commit_idx = repo.first_parent_index(snapshot)
        commit_ts = repo.commit_time(snapshot)
        result = mine_static(repo, snapshot, spec.repo_id, config.static, commit_idx, config.seed)
    base = dict(commit_sha=snapshot, commit_timestamp=commit_ts, commit_idx=commit_idx,
                created_at=created_at, is_ood=is_ood, n_test_files=result.n_test_files,
                n_candidates=result.n_candidates, filter_counts=dict(sorted(result.filter_counts.items())),
                file_skips=[list(s) for s in result.file_skips], key=key)
    if result.n_test_files == 0:
        return _failed(spec, "no test files (test_*.py, *_test.py or under tests/)", **base)
    if not result.rows:
        return _failed(spec, f"no tasks after filtering ({result.n_candidates} candidate assertions "
                             f"in {result.n_test_files} test files)", **base)
    write_parquet(rows_path, table_from_rows(result.rows, _MINED_SCHEMA))
    return {"repo_id": spec.repo_id, "url": spec.url, "status": "ok", "reason": None,
            "n_tasks": len(result.rows), **base}


# ----------------------------------------------------------------------------- driver

def _run_pool(specs: list[RepoSpec], config: BuildConfig, work_dir: Path, cache_dir: Path,
              workers: int, refresh: bool, progress: bool) -> dict[str, dict]:
    metas: dict[str, dict] = {}
    bar = tqdm(total=len(specs), desc="mining", unit="repo", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    n_tasks = n_failed = 0

    def record(meta: dict) -> None:
        nonlocal n_tasks, n_failed
        metas[meta["repo_id"]] = meta
        n_tasks += meta["n_tasks"]
        n_failed += meta["status"] != "ok"
        bar.set_postfix(tasks=n_tasks, failed=n_failed, refresh=False)
        bar.update(1)

    if workers <= 1:
        for spec in specs:
            record(mine_repo(spec, config, work_dir, cache_dir, refresh))
    else:
        ctx = multiprocessing.get_context("spawn")
        pending = list(specs)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(mine_repo, s, config, work_dir, cache_dir, refresh): s for s in pending}
            crashed: list[RepoSpec] = []
            for fut in as_completed(futures):
                try:
                    record(fut.result())
                except BrokenProcessPool:
                    crashed.append(futures[fut])
        # A worker died (e.g. killed by the OS): retry those repositories one per process
        # so a crashing repository is isolated and recorded instead of taking others down.
        for spec in sorted(crashed, key=lambda s: s.repo_id):
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as solo:
                try:
                    record(solo.submit(mine_repo, spec, config, work_dir, cache_dir, refresh).result())
                except BrokenProcessPool:
                    meta = _failed(spec, "worker process crashed while mining this repository")
                    write_json(work_dir / f"{safe_name(spec.repo_id)}.json", meta)
                    record(meta)
    bar.close()
    return metas


def build(repos_file: str | Path, out_dir: str | Path, config: BuildConfig | None = None,
          workers: int = 1, cache_dir: str | Path | None = None, refresh: bool = False,
          progress: bool = True) -> BuildSummary:
    """Build the benchmark tables for ``repos_file`` into ``out_dir``."""
    config = config or BuildConfig()
    out_dir = Path(out_dir)
    specs, bad_rows = read_repo_list(repos_file)
    work_dir = out_dir / ".work" / "static"
    work_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else out_dir / ".cache" / "repos"
    metas = _run_pool(specs, config, work_dir, cache, workers, refresh, progress)
    return assemble(specs, bad_rows, metas, config, work_dir, out_dir, Path(repos_file))


def assemble(specs: list[RepoSpec], bad_rows: list[BadRow], metas: dict[str, dict],
             config: BuildConfig, work_dir: Path, out_dir: Path, repos_file: Path) -> BuildSummary:
    """Turn per-repository results into the published files (deterministic order)."""
    from data_cards.card import render_card

    static_rows: list[dict] = []
    repo_rows: list[dict] = []
    filter_counts: Counter = Counter()
    failures: list[dict] = [{"repo_id": b.repo_id, "source": b.source, "stage": "repo_list",
                             "reason": b.reason} for b in bad_rows]
    per_repo: list[dict] = []
    for spec in sorted(specs, key=lambda s: s.repo_id):
        meta = metas[spec.repo_id]
        split = cross_repo_split(spec.repo_id, config.seed, config.cr_val_fraction,
                                 config.cr_test_fraction, spec.split, bool(meta.get("is_ood")))
        filter_counts.update(meta.get("filter_counts", {}))
        ok = meta["status"] == "ok"
        if ok:
            rows = read_parquet(work_dir / f"{safe_name(spec.repo_id)}.parquet").to_pylist()
            ir = in_repo_split([r["task_id"] for r in rows], config.seed, config.in_repo_fractions)
            for r in rows:
                r["cross_repo_split"] = split
                r["in_repo_split"] = ir[r["task_id"]]
            static_rows.extend(rows)
        else:
            failures.append({"repo_id": spec.repo_id, "source": spec.source, "stage": "mine",
                             "reason": meta["reason"]})
        repo_rows.append({
            "repo_id": spec.repo_id, "url": spec.url, "commit_sha": meta.get("commit_sha"),
            "commit_timestamp": meta.get("commit_timestamp"), "license": spec.license,
            "stars": spec.stars, "created_at": meta.get("created_at"),
            "cross_repo_split": split, "status": meta["status"],
            "failure_reason": meta.get("reason"), "n_test_files": meta.get("n_test_files", 0),
            "n_tasks": meta.get("n_tasks", 0)})
        per_repo.append({"repo_id": spec.repo_id, "status": meta["status"],
                         "n_test_files": meta.get("n_test_files", 0),
                         "n_candidates": meta.get("n_candidates", 0),
                         "n_tasks": meta.get("n_tasks", 0),
                         "filter_counts": meta.get("filter_counts", {}),
                         "file_skips": meta.get("file_skips", [])})

    static_rows.sort(key=lambda r: (r["repo_id"], r["test_file"], r["byte_offset"]))
    split_sizes: dict[str, int] = {}
    written: list[str] = []
    (out_dir / "static").mkdir(parents=True, exist_ok=True)
    for split_name, (cr, ir) in FILE_SPLITS.items():
        rows = [r for r in static_rows if r["cross_repo_split"] == cr
                and (ir is None or r["in_repo_split"] == ir)]
        split_sizes[split_name] = len(rows)
        rel = f"static/{split_name}.parquet"
        if rows:
            write_parquet(out_dir / rel, table_from_rows(rows, STATIC))
            written.append(rel)
        else:  # datasets cannot read an empty Parquet file: empty splits are left out
            (out_dir / rel).unlink(missing_ok=True)
    write_parquet(out_dir / "repos.parquet", table_from_rows(repo_rows, REPOS))
    write_jsonl(out_dir / "failures.jsonl", failures)
    report = {"n_repos_listed": len(specs) + len(bad_rows), "n_repos_ok": sum(
        m["status"] == "ok" for m in metas.values()), "n_failures": len(failures),
        "n_tasks": len(static_rows), "split_sizes": split_sizes,
        "filter_counts": dict(sorted(filter_counts.items())), "repos": per_repo}
    write_json(out_dir / "build_report.json", report)
    written += ["repos.parquet", "failures.jsonl", "build_report.json"]
    atomic_write_text(out_dir / "README.md", render_card(out_dir, config, report))
    written.append("README.md")
    manifest = {"tool": "repopeftbench", "version": __version__, "schema_version": SCHEMA_VERSION,
                "config": config.to_dict(), "config_hash": config.hash(),
                "repo_list_sha256": sha256_file(repos_file),
                "files": {rel: sha256_file(out_dir / rel) for rel in sorted(written)}}
    write_json(out_dir / "manifest.json", manifest)
    return BuildSummary(out_dir=out_dir, n_repos=len(specs) + len(bad_rows),
                        n_ok=report["n_repos_ok"], n_failed=len(failures),
                        split_sizes=split_sizes, filter_counts=report["filter_counts"],
                        failures=failures)
