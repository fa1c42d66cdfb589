"""One table for a set of runs: em with CIs, paired difference against a reference run,
training cost, and the adapter audit where there is one.

    python benchmarks/report_runs.py --dataset BENCH --runs RUNS_DIR [--reference pretrained] \\
        [--checkpoints CKPT_DIR]

RUNS_DIR holds one directory per split, each with one run directory per method (the layout
``run_baselines.sh`` and ``run_code2lora.sh`` write). Training cost is read from the
``train_result.json`` files under CKPT_DIR/<method> (summed for per-repository adapters).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluators.harness import compare_runs
from repopeftbench.results import Results
from repopeftbench.stats import markdown_table


def training_cost(ckpt: Path) -> str:
    index = ckpt / "adapters.json"           # per-repository adapters in use (not stale ones)
    if index.exists():
        files = [(ckpt / rel).parent / "train_result.json"
                 for rel in json.loads(index.read_text()).values()]
    else:
        files = sorted(ckpt.rglob("train_result.json")) if ckpt.is_dir() else []
    files = [f for f in files if f.exists()]
    if not files:
        return "-"
    recs = [json.loads(f.read_text()) for f in files]
    wall = sum(r["wall_time_s"] for r in recs)
    tokens = sum(r["tokens"] for r in recs)
    steps = sum(r["steps"] for r in recs)
    return f"{wall:.0f} s, {steps} steps, {tokens / wall:.0f} tok/s" + (
        f" ({len(recs)} adapters)" if len(recs) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--reference", default="pretrained")
    ap.add_argument("--checkpoints", default=None)
    args = ap.parse_args()

    for split_dir in sorted(p for p in Path(args.runs).iterdir() if p.is_dir()):
        rows, audits = [], []
        ref = split_dir / args.reference
        for run in sorted(p for p in split_dir.iterdir() if (p / "results.json").exists()):
            res = Results.load(run)
            em = res.scores["metrics"]["em"]
            diff = "-"
            if run.name != args.reference and (ref / "results.json").exists():
                c = compare_runs(ref, run, args.dataset)
                diff = f"{c['delta']:+.1f} [{c['ci'][0]:+.1f}, {c['ci'][1]:+.1f}]"
            cost = training_cost(Path(args.checkpoints) / run.name) if args.checkpoints else "-"
            rows.append([run.name, res.scores["n_tasks"], res.scores["n_repos"],
                         f"{em['micro']:.1f} [{em['micro_ci'][0]:.1f}, {em['micro_ci'][1]:.1f}]",
                         f"{em['macro']:.1f}", diff, cost])
            if res.audit:
                a = res.audit
                cos = a.get("cosine", {})
                audits.append([run.name, *(f"{a[m]['micro']:.1f} [{a[m]['micro_ci'][0]:.1f}, "
                                           f"{a[m]['micro_ci'][1]:.1f}]" for m in ("own", "mean", "shuffled")),
                               *(f"{a[k]['delta']:+.1f} [{a[k]['ci'][0]:+.1f}, {a[k]['ci'][1]:+.1f}]"
                                 for k in ("own_minus_mean", "own_minus_shuffled")),
                               f"{cos.get('mean', float('nan')):.4f} / {cos.get('centred_mean', float('nan')):.4f}",
                               f"{cos.get('update_mean', float('nan')):.4f} / "
                               f"{cos.get('update_centred_mean', float('nan')):.4f}"])
        print(f"## {split_dir.name}\n")
        print(markdown_table(["method", "tasks", "repos", "em micro [95% CI]", "em macro",
                              f"minus {args.reference} [95% CI]", "training"], rows))
        if audits:
            print("\n" + markdown_table(["method", "own", "mean", "shuffled", "own - mean",
                                         "own - shuffled", "cosine raw / centred",
                                         "update cosine raw / centred"], audits))
        print()


if __name__ == "__main__":
    main()
