"""Evolution mining time against ``git log -p --first-parent``, measured in the same run.

For each repository of a list, times the evolution miner over the whole first-parent
history and ``git log -p --first-parent HEAD`` (output discarded) on the same repository,
and prints the ratio miner / git log. Also prints commits, kept commits and tasks, and how
many test-file versions were re-parsed as a window or whole.

With ``--check``, each history is also mined with every test-file version parsed whole
(the reference, ``window=False``) and the two outputs (tasks, commits with their diffs,
counters, replay state) must be identical; the reference's time is printed beside.

    python benchmarks/bench_evolution_mining.py --repos repos.jsonl [--repeat 1] [--check]
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from miners.acquire import acquire
from miners.evolution_miner import EvolutionMinerConfig, mine_evolution
from miners.git import GitRepo
from miners.repolist import read_repo_list
from repopeftbench.stats import markdown_table


def time_git_log(path: Path, head: str) -> float | None:
    """Seconds of ``git log -p --first-parent``, or None when git fails (a blob missing
    from a damaged repository stops it part way: no fair reference)."""
    with GitRepo(path) as repo:
        t0 = time.perf_counter()
        done = subprocess.run(repo._cmd(["log", "-p", "--first-parent", head]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              **repo.popen_kwargs(), check=False)
    return time.perf_counter() - t0 if done.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repos", required=True, help="repository list (.csv/.jsonl)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N timings (default 1)")
    ap.add_argument("--cache-dir", default=".bench-cache")
    ap.add_argument("--check", action="store_true",
                    help="also mine with whole-file parses and require identical output")
    args = ap.parse_args()
    specs, _ = read_repo_list(args.repos)
    rows, tot_mine, tot_git, tot_ref, mismatches = [], 0.0, 0.0, 0.0, []
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
            times = [time_git_log(repo.path, head) for _ in range(args.repeat)]
            if None in times:
                print(f"skip {spec.repo_id}: git log -p fails on it (missing objects)")
                continue
            t_git = min(t for t in times if t is not None)
            t_mine, result, stats = float("inf"), None, {}
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = mine_evolution(repo, head, spec.repo_id, EvolutionMinerConfig(),
                                        parse_stats=stats)
                t_mine = min(t_mine, time.perf_counter() - t0)
            t_ref = None
            if args.check:
                t0 = time.perf_counter()
                ref = mine_evolution(repo, head, spec.repo_id, EvolutionMinerConfig(), window=False)
                t_ref = time.perf_counter() - t0
                tot_ref += t_ref
                assert result is not None
                if (ref.tasks, ref.commits, ref.counts, ref.state.to_dict()) != \
                        (result.tasks, result.commits, result.counts, result.state.to_dict()):
                    mismatches.append(spec.repo_id)
        assert result is not None
        tot_mine, tot_git = tot_mine + t_mine, tot_git + t_git
        rows.append([spec.repo_id, result.state.n_commits, len(result.commits), len(result.tasks),
                     f"{stats.get('window', 0)}/{stats.get('full', 0)}", f"{t_git:.2f}",
                     f"{t_mine:.2f}", f"{t_mine / t_git:.2f}"]
                    + ([f"{t_ref:.2f}"] if t_ref is not None else []))
    rows.append(["TOTAL", "", "", "", "", f"{tot_git:.2f}", f"{tot_mine:.2f}",
                 f"{tot_mine / tot_git:.2f}" if tot_git else "-"]
                + ([f"{tot_ref:.2f}"] if args.check else []))
    print(markdown_table(["repo", "first-parent commits", "kept", "tasks (uncapped)",
                          "window/whole parses", "git log -p s", "mine s", "mine / git log -p"]
                         + (["whole-file parses s"] if args.check else []), rows))
    if args.check:
        print(f"identical output to whole-file parsing: {len(rows) - 1 - len(mismatches)} of "
              f"{len(rows) - 1} repositories" + (f"; DIFFER: {', '.join(mismatches)}" if mismatches else ""))
        if mismatches:
            raise SystemExit(1)
    print(f"ratio {tot_mine / tot_git:.2f}x git log -p --first-parent" if tot_git else "")


if __name__ == "__main__":
    main()
