"""Static mining throughput against its floor, measured in the same run.

For each repository of a list: the floor is listing the snapshot's test files,
reading their blobs and parsing them with tree-sitter (what any miner must do);
the miner is ``mine_static`` on the same snapshot. Prints tasks per second and the
ratio miner time / floor time per repository and in total.

    python benchmarks/bench_static_mining.py --repos repos.jsonl [--repeat 3]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from miners.acquire import acquire
from miners.static_miner import StaticMinerConfig, make_parser, mine_static, read_test_file
from miners.testfiles import is_test_file
from miners.repolist import read_repo_list
from repopeftbench.stats import markdown_table


def floor(repo, sha: str, config: StaticMinerConfig) -> int:
    parser = make_parser()
    n = 0
    for entry in repo.ls_tree(sha):
        if entry.kind == "blob" and is_test_file(entry.path):
            data, _, _ = read_test_file(repo, entry, config)
            if data is not None:
                parser.parse(data)
                n += 1
    return n


def best_of(repeat: int, fn):
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repos", required=True, help="repository list (.csv/.jsonl)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings (default 3)")
    ap.add_argument("--cache-dir", default=".bench-cache")
    args = ap.parse_args()
    config = StaticMinerConfig()
    specs, _ = read_repo_list(args.repos)
    rows, tot_mine, tot_floor, tot_tasks = [], 0.0, 0.0, 0
    for spec in specs:
        try:
            repo = acquire(spec, Path(args.cache_dir))
        except Exception as exc:  # benchmark goes on; the build records such failures
            print(f"skip {spec.repo_id}: {exc}")
            continue
        with repo:
            sha = repo.resolve(spec.sha or "HEAD")
            if sha is None:
                continue
            t_floor, n_files = best_of(args.repeat, lambda: floor(repo, sha, config))
            t_mine, result = best_of(args.repeat, lambda: mine_static(repo, sha, spec.repo_id, config))
        tasks = len(result.rows)
        tot_mine, tot_floor, tot_tasks = tot_mine + t_mine, tot_floor + t_floor, tot_tasks + tasks
        rows.append([spec.repo_id, n_files, result.n_candidates, tasks, f"{t_floor:.3f}",
                     f"{t_mine:.3f}", f"{t_mine / t_floor:.2f}", f"{tasks / t_mine:.0f}"])
    rows.append(["TOTAL", "", "", tot_tasks, f"{tot_floor:.3f}", f"{tot_mine:.3f}",
                 f"{tot_mine / tot_floor:.2f}" if tot_floor else "-",
                 f"{tot_tasks / tot_mine:.0f}" if tot_mine else "-"])
    print(markdown_table(["repo", "test files", "candidates", "tasks", "floor s (read+parse)",
                          "mine s", "mine/floor", "tasks/s"], rows))


if __name__ == "__main__":
    main()
