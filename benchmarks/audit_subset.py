"""An audited run's own - replacement comparisons on the tasks of its split's first N
repositories only (``--repos N``, the nested order of ``--repos`` and ``max_train_repos``):
e.g. the 40-repository ceiling on the 20 repositories of the 20-repository run, so the
two leave-one-out means (of 39 and of 19 others) are compared on the same tasks.

    python benchmarks/audit_subset.py --dataset BENCH --run OUT/runs/NAME --repos 20
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--run", required=True, help="an audited run directory")
    ap.add_argument("--repos", type=int, required=True, help="the split's first N repositories")
    args = ap.parse_args()

    from evaluators.report import read_samples, read_scored
    from evaluators.scoring import paired_comparison
    from repopeftbench.dataset import Benchmark, first_repos

    run = Path(args.run)
    results = json.loads((run / "results.json").read_text())
    audit = results.get("audit")
    if not audit:
        raise SystemExit(f"{run}: not an audited run (no audit in results.json)")
    bench = Benchmark(args.dataset)
    scored = read_scored(run, args.dataset)
    # the order is nested: the first N of the run's repositories are the split's first N
    keep = first_repos({s.repo_id for s in scored}, args.repos)
    own = [s for s in scored if s.repo_id in keep]
    print(f"{run.name}: own - replacement on the first {args.repos} repositories' tasks")
    print("| own - | tasks | repos | tf_em | tf_logprob |\n|---|---|---|---|---|")
    for mode in audit["modes"][1:]:
        other = read_samples(run / f"samples-{mode}.jsonl", bench.sha256)
        cells = []
        for metric in ("tf_em", "tf_logprob"):
            c = paired_comparison([s for s in other if s.repo_id in keep], own, metric=metric)
            cells.append(f"{c['delta']:+.2f} [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}] ({c['mde']:.2f})")
        print(f"| {mode} | {c['n_tasks']} | {c['n_repos']} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
