"""``repopeftbench build``: repository list -> mined, split, documented Parquet tables.

Each repository is mined in a worker process (``worker.py``); its result is written
atomically to ``OUT/.work/`` as soon as it is done, so a build that is interrupted
(even by SIGKILL) resumes where it stopped and ends with files identical to an
uninterrupted build. A repository that fails is recorded with its reason and the
build goes on. ``assemble.py`` then turns per-repository results into the tables. Every build also
writes the context table (the repositories' non-test code at their snapshot).
"""
from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from repopeftbench.io import canonical_json, sha256_text
from repopeftbench.schema import SCHEMA_VERSION
from repopeftbench.splits import parse_time

from .assemble import BuildSummary, assemble
from .context_miner import ContextConfig
from .evolution_miner import EvolutionMinerConfig
from .job import PartResult, RepoResult, _save, mine_repo, parts_of, paths
from .repolist import RepoSpec, read_repo_list
from .static_miner import StaticMinerConfig

TRACKS = ("static", "evolution")


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
    evolution: EvolutionMinerConfig = field(default_factory=EvolutionMinerConfig)
    context: ContextConfig = field(default_factory=ContextConfig)

    def __post_init__(self) -> None:
        unknown = set(self.tracks) - set(TRACKS)
        if unknown or not self.tracks:
            raise ValueError(f"unknown track(s) {sorted(unknown)}; available: {', '.join(TRACKS)}")
        if self.cutoff is not None:
            parse_time(self.cutoff)
        if abs(sum(self.in_repo_fractions) - 1.0) > 1e-9:
            raise ValueError(f"in_repo_fractions must sum to 1, got {self.in_repo_fractions}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tracks"] = sorted(self.tracks)
        d["in_repo_fractions"] = list(self.in_repo_fractions)
        d["schema_version"] = SCHEMA_VERSION
        return d

    def hash(self) -> str:
        return sha256_text(canonical_json(self.to_dict()))[:16]


def _run_pool(specs: list[RepoSpec], config: BuildConfig, work_root: Path, cache_dir: Path,
              workers: int, refresh: bool, progress: bool) -> dict[str, RepoResult]:
    results: dict[str, RepoResult] = {}
    bar = tqdm(total=len(specs), desc="mining", unit="repo", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    totals = {t: 0 for t in config.tracks}

    def record(result: RepoResult) -> None:
        results[result.repo_id] = result
        for track in config.tracks:
            totals[track] += result.parts[track].n_tasks
        bar.set_postfix(refresh=False, **{f"{t}_tasks": n for t, n in totals.items()})
        bar.update(1)

    if workers <= 1:
        for spec in specs:
            record(mine_repo(spec, config, work_root, cache_dir, refresh))
    else:
        ctx = multiprocessing.get_context("spawn")
        crashed: list[RepoSpec] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(mine_repo, s, config, work_root, cache_dir, refresh): s
                       for s in specs}
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
                    record(solo.submit(mine_repo, spec, config, work_root, cache_dir, refresh).result())
                except BrokenProcessPool:
                    reason = "worker process crashed while mining this repository"
                    record(RepoResult(spec.repo_id, None, {
                        part: _save(paths(work_root, part, spec.repo_id)["meta"],
                                    PartResult.failed(spec.repo_id, reason))
                        for part in parts_of(config)}))
    bar.close()
    return results


def build(repos_file: str | Path, out_dir: str | Path, config: BuildConfig | None = None,
          workers: int = 1, cache_dir: str | Path | None = None, refresh: bool = False,
          progress: bool = True) -> BuildSummary:
    """Build the benchmark tables for ``repos_file`` into ``out_dir``."""
    config = config or BuildConfig()
    out_dir = Path(out_dir)
    specs, bad_rows = read_repo_list(repos_file)
    work_root = out_dir / ".work"
    for part in parts_of(config):
        (work_root / part).mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else out_dir / ".cache" / "repos"
    results = _run_pool(specs, config, work_root, cache, workers, refresh, progress)
    return assemble(specs, bad_rows, results, config, work_root, out_dir, Path(repos_file))
