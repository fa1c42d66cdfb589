"""``repopeftbench build``: repository list -> mined, split, documented Parquet tables.

Each repository is mined in a worker process (``worker.py``); its result is written
atomically to the work directory (``.OUT.work/`` beside ``OUT``) as soon as it is done, so a build that is interrupted
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
from pathlib import Path

from tqdm import tqdm

from .assemble import BuildSummary, assemble
from .config import BuildConfig
from .job import PartResult, RepoResult, _save, mine_repo, parts_of, paths
from .repolist import RepoSpec, read_repo_list

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


def default_work_dir(out_dir: str | Path) -> Path:
    """Where a build keeps its resume state and clones: beside the output directory (a
    hidden ``.<name>.work``), so the published directory holds only the benchmark."""
    out = Path(out_dir).absolute()
    return out.parent / f".{out.name}.work"


def build(repos_file: str | Path, out_dir: str | Path, config: BuildConfig | None = None,
          workers: int = 1, cache_dir: str | Path | None = None, refresh: bool = False,
          progress: bool = True, work_dir: str | Path | None = None) -> BuildSummary:
    """Build the benchmark tables for ``repos_file`` into ``out_dir``.

    Per-repository results go to ``work_dir/parts`` (default: ``default_work_dir``), remote
    clones to ``cache_dir`` (default: ``work_dir/repos``)."""
    config = config or BuildConfig()
    out_dir = Path(out_dir)
    specs, bad_rows = read_repo_list(repos_file)
    work = Path(work_dir) if work_dir is not None else default_work_dir(out_dir)
    work_root = work / "parts"
    for part in parts_of(config):
        (work_root / part).mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else work / "repos"
    results = _run_pool(specs, config, work_root, cache, workers, refresh, progress)
    return assemble(specs, bad_rows, results, config, work_root, out_dir, Path(repos_file))


def format_summary(summary: BuildSummary) -> str:
    """What ``repopeftbench build`` prints: totals, split sizes, counters and failures."""
    from repopeftbench.stats import markdown_table

    tables = list(summary.split_sizes)
    totals = ", ".join(f"{sum(summary.split_sizes[t].values())} {t}" for t in tables)
    lines = [f"\nBuilt {summary.out_dir}: {summary.n_ok}/{summary.n_repos} repositories gave "
             f"tasks; {totals} rows."]
    splits = list(next(iter(summary.split_sizes.values()), {}))
    lines.append(markdown_table(["split", *tables], [[s, *(summary.split_sizes[t][s] for t in tables)]
                                                     for s in splits]))
    if summary.filter_counts:
        lines.append(markdown_table(["filtered or counted", "count"],
                                    [[k, v] for k, v in summary.filter_counts.items()]))
    if summary.failures:
        lines.append(f"\n{len(summary.failures)} failure(s), listed in "
                     f"{Path(summary.out_dir) / 'failures.jsonl'}:")
        for f in summary.failures[:20]:
            where = f" [{f['track']}]" if f.get("track") else ""
            lines.append(f"  {f['repo_id'] or f['source']}{where}: {f['reason']}")
        if len(summary.failures) > 20:
            lines.append(f"  ... and {len(summary.failures) - 20} more")
    return "\n".join(lines)
