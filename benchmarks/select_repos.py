"""Keep the repositories of a candidate build that can carry the in-repo experiment.

    python benchmarks/select_repos.py --report CANDIDATES/build_report.json \\
        --repos benchmarks/repos_real.jsonl --min-static-tasks 75 > benchmarks/repos_experiment.jsonl

A repository is kept when its static track gave at least ``--min-static-tasks`` tasks in
the candidate build (75: at least 60 training tasks after the 8:1:1 in-repo split, enough
for a per-repository adapter to see real data), whatever its cross-repo split, so the
selection does not depend on the split. Prints the kept rows of the list, in its order,
and a summary on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", required=True)
    ap.add_argument("--repos", required=True)
    ap.add_argument("--min-static-tasks", type=int, default=75)
    args = ap.parse_args()
    report = json.load(open(args.report))
    n_static = {r["repo_id"]: r["tracks"].get("static", {}).get("n_tasks", 0) for r in report["repos"]}
    kept = dropped = 0
    for line in open(args.repos):
        row = json.loads(line)
        if n_static.get(row["repo_id"], 0) >= args.min_static_tasks:
            sys.stdout.write(json.dumps(row) + "\n")
            kept += 1
        else:
            dropped += 1
    print(f"kept {kept} repositories, dropped {dropped} (fewer than {args.min_static_tasks} "
          f"static tasks, or not mined)", file=sys.stderr)


if __name__ == "__main__":
    main()
