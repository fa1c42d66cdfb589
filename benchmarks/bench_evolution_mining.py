"""Evolution mining time against ``git log -p --first-parent``, measured in the same run.

For each repository of a list, times the evolution miner over the whole first-parent
history and ``git log -p --first-parent HEAD`` (output discarded) on the same repository,
and prints the ratio miner / git log. Also prints commits, kept commits and tasks.

    python benchmarks/bench_evolution_mining.py --repos repos.jsonl [--repeat 1]
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from miners.acquire import acquire
from miners.evolution_miner import EvolutionMinerConfig, mine_evolution
from miners.git import SAFE_OPTIONS, git_env
from miners.repolist import read_repo_list
from repopeftbench.stats import markdown_table


def time_git_log(path: Path, head: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["git", *SAFE_OPTIONS, "-C", str(path), "log", "-p", "--first-parent", head],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=git_env(), check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repos", required=True, help="repository list (.csv/.jsonl)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N timings (default 1)")
    ap.add_argument("--cache-dir", default=".bench-cache")
    args = ap.parse_args()
    specs, _ = read_repo_list(args.repos)
    rows, tot_mine, tot_git = [], 0.0, 0.0
    for spec in specs:
        try:
            repo = acquire(spec, Path(args.cache_dir))
        except Exception as exc:  # the build records such failures; the benchmark goes on
            print(f"skip {spec.repo_id}: {exc}")
            continue
        with repo:
            head = repo.resolve(spec.sha or "HEAD")
            if head is None:
                continue
            t_git = min(time_git_log(repo.path, head) for _ in range(args.repeat))
            t_mine, result = float("inf"), None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = mine_evolution(repo, head, spec.repo_id, EvolutionMinerConfig())
                t_mine = min(t_mine, time.perf_counter() - t0)
        assert result is not None
        tot_mine, tot_git = tot_mine + t_mine, tot_git + t_git
        rows.append([spec.repo_id, result.state.n_commits, len(result.commits), len(result.tasks),
                     f"{t_git:.2f}", f"{t_mine:.2f}", f"{t_mine / t_git:.2f}"])
    rows.append(["TOTAL", "", "", "", f"{tot_git:.2f}", f"{tot_mine:.2f}",
                 f"{tot_mine / tot_git:.2f}" if tot_git else "-"])
    print(markdown_table(["repo", "first-parent commits", "kept", "tasks (uncapped)",
                          "git log -p s", "mine s", "mine / git log -p"], rows))


if __name__ == "__main__":
    main()
