"""``repopeftbench build``: repository list -> mined, split, documented Parquet tables.

First every repository is identified (acquired, its commits resolved, its root commits and
snapshot tree read) so that one listed twice under two ids is recorded as a duplicate and
mined once. Then each is mined in a worker process (``job.py``) that ends when the build
ends; its result is written atomically to the work directory (``.OUT.work/`` beside
``OUT``), with checksums, as soon as it is done, so a build that is interrupted (even by
SIGKILL) resumes where it stopped and ends with files identical to an uninterrupted build.
A repository that fails is recorded with its reason and the build goes on.
``assemble.py`` turns per-repository results into the tables in a staging folder, which
``output.py`` swaps in whole. Every build also writes the context table.
"""
from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from repopeftbench.errors import UserError
from repopeftbench.io import write_jsonl

from .assemble import BuildSummary, assemble
from .config import BuildConfig
from .job import PartResult, RepoResult, _save, duplicates, identify, mine_repo, parts_of, paths
from .output import (check_replaceable, discard, new_staging, recover, remove_stray_temporaries,
                     swap_in)
from .repolist import RepoSpec, read_repo_list

def _end_with_parent(parent_pid: int) -> None:
    """Worker initializer: the worker ends when the build process ends, however it ends
    (SIGKILL by the out-of-memory killer included). Linux delivers SIGKILL on the parent's
    death (``PR_SET_PDEATHSIG``); everywhere, a thread also watches the parent id."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)                     # the parent died before we got here

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _map_isolated(fn, specs: list[RepoSpec], args: tuple, workers: int, progress: bool,
                  desc: str, on_crash) -> dict[str, object]:
    """``fn(spec, *args)`` for every spec, in ``workers`` processes that end with this one. A
    worker that dies (killed by the OS, say) breaks the pool: its repositories are retried
    one per process, so a crashing repository is isolated and recorded (``on_crash``)
    instead of taking others down."""
    results: dict[str, object] = {}
    bar = tqdm(total=len(specs), desc=desc, unit="repo", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    if workers <= 1:
        for spec in specs:
            results[spec.repo_id] = fn(spec, *args)
            bar.update(1)
        bar.close()
        return results
    ctx = multiprocessing.get_context("spawn")
    lifetime = dict(initializer=_end_with_parent, initargs=(os.getpid(),))
    crashed: list[RepoSpec] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **lifetime) as pool:
        futures = {pool.submit(fn, s, *args): s for s in specs}
        for fut in as_completed(futures):
            try:
                results[futures[fut].repo_id] = fut.result()
                bar.update(1)
            except BrokenProcessPool:
                crashed.append(futures[fut])
    for spec in sorted(crashed, key=lambda s: s.repo_id):
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx, **lifetime) as solo:
            try:
                results[spec.repo_id] = solo.submit(fn, spec, *args).result()
            except BrokenProcessPool:
                results[spec.repo_id] = on_crash(spec)
        bar.update(1)
    bar.close()
    return results


CRASH_REASON = "worker process crashed while mining this repository"


def _run_pool(specs: list[RepoSpec], config: BuildConfig, work_root: Path, cache_dir: Path,
              workers: int, refresh: bool, progress: bool) -> dict[str, RepoResult]:
    """Identify every repository (acquire, resolve, roots and tree), drop the ones listed
    twice, then mine the rest."""
    infos = _map_isolated(identify, specs, (config, cache_dir, refresh), workers, progress,
                          "resolving", lambda spec: CRASH_REASON)
    twice = duplicates(specs, infos)      # type: ignore[arg-type]
    results: dict[str, RepoResult] = {
        repo_id: RepoResult(repo_id, None, {part: PartResult.failed(repo_id, reason)
                                            for part in parts_of(config)})
        for repo_id, reason in twice.items()}

    def crashed(spec: RepoSpec) -> RepoResult:
        return RepoResult(spec.repo_id, None, {
            part: _save(paths(work_root, part, spec.repo_id), PartResult.failed(spec.repo_id, CRASH_REASON))
            for part in parts_of(config)})

    todo = [s for s in specs if s.repo_id not in twice]
    mined = _map_isolated(_mine_identified, todo, (config, work_root, cache_dir, infos), workers,
                          progress, "mining", crashed)
    results.update(mined)                 # type: ignore[arg-type]
    if progress:
        totals = {t: sum(r.parts[t].n_tasks for r in results.values()) for t in config.tracks}
        print("mined: " + ", ".join(f"{n} {t} tasks" for t, n in totals.items()), file=sys.stderr)
    return results


def _mine_identified(spec: RepoSpec, config: BuildConfig, work_root: Path, cache_dir: Path,
                     infos: dict) -> RepoResult:
    return mine_repo(spec, config, work_root, cache_dir, infos[spec.repo_id])


def default_work_dir(out_dir: str | Path) -> Path:
    """Where a build keeps its resume state and clones: beside the output directory (a
    hidden ``.<name>.work``), so the published directory holds only the benchmark."""
    out = Path(out_dir).absolute()
    return out.parent / f".{out.name}.work"


@contextmanager
def work_lock(work: Path):
    """One build at a time per work directory (an advisory lock the OS drops when the
    process ends, however it ends)."""
    work.mkdir(parents=True, exist_ok=True)
    fh = open(work / "build.lock", "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"{work}: another build is using this work directory; wait for it "
                            f"or give --work-dir") from None
        yield
    finally:
        fh.close()


def build(repos_file: str | Path, out_dir: str | Path, config: BuildConfig | None = None,
          workers: int = 1, cache_dir: str | Path | None = None, refresh: bool = False,
          progress: bool = True, work_dir: str | Path | None = None,
          overwrite: bool = False) -> BuildSummary:
    """Build the benchmark tables for ``repos_file`` into ``out_dir``.

    Per-repository results go to ``work_dir/parts`` (default: ``default_work_dir``), remote
    clones to ``cache_dir`` (default: ``work_dir/repos``). The benchmark is assembled beside
    ``out_dir`` and swapped in whole (``output.py``); a build in which no repository gives
    tasks leaves ``out_dir`` as it was, with the failures in ``work_dir/failures.jsonl``."""
    config = config or BuildConfig()
    out = Path(out_dir).absolute()
    check_replaceable(out, overwrite)
    specs, bad_rows = read_repo_list(repos_file)
    work = Path(work_dir) if work_dir is not None else default_work_dir(out)
    with work_lock(work):
        recover(out)
        check_replaceable(out, overwrite)
        work_root = work / "parts"
        remove_stray_temporaries(work_root)
        for part in parts_of(config):
            (work_root / part).mkdir(parents=True, exist_ok=True)
        cache = Path(cache_dir) if cache_dir else work / "repos"
        results = _run_pool(specs, config, work_root, cache, workers, refresh, progress)
        stage = new_staging(out)
        try:
            summary = assemble(specs, bad_rows, results, config, work_root, stage, Path(repos_file))
            if summary.n_ok == 0:
                write_jsonl(work / "failures.jsonl", summary.failures)
                summary.failures_path = work / "failures.jsonl"
                discard(stage)
            else:
                swap_in(stage, out)
                summary.published = True
                summary.failures_path = out / "failures.jsonl"
        finally:
            discard(stage)
    summary.out_dir = Path(out_dir)
    return summary


def format_summary(summary: BuildSummary) -> str:
    """What ``repopeftbench build`` prints: totals, split sizes, counters and failures."""
    from repopeftbench.stats import markdown_table

    tables = list(summary.split_sizes)
    totals = ", ".join(f"{sum(summary.split_sizes[t].values())} {t}" for t in tables)
    if not summary.published:
        lines = [f"\nNo repository of {summary.n_repos} gave tasks: {summary.out_dir} was left as "
                 f"it was (nothing written there)."]
    else:
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
                     f"{summary.failures_path}:")
        for f in summary.failures[:20]:
            where = f" [{f['track']}]" if f.get("track") else ""
            lines.append(f"  {f['repo_id'] or f['source']}{where}: {f['reason']}")
        if len(summary.failures) > 20:
            lines.append(f"  ... and {len(summary.failures) - 20} more")
    return "\n".join(lines)
