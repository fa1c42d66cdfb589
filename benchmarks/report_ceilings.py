"""The tables of the powered experiment from its run directories (``run_ceilings.sh``):
every run against the reference run (shared LoRA) on their common tasks, on all tasks and
per knowledge-source label, teacher-forced em and log-likelihood, each with its paired
repository-bootstrap CI and the smallest difference it could detect; each audit (own,
leave-one-out mean, shuffled, another repository's examples or adapter); and a plot of
own minus the first replacement (the leave-one-out mean where the audit has one) per
repository.

    python benchmarks/report_ceilings.py --dataset BENCH --runs OUT/runs \\
        [--reference shared-lora] [--plot own_minus_mean.png]
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

LABELS = (None, "prefix", "repository", "none")
# the two metrics of every table: teacher-forced runs' (strict em without decoding, the
# target's log-likelihood), or generated runs' (exact match, edit similarity)
METRICS = {"teacher-forced": ("tf_em", "tf_logprob"), "generate": ("em", "edit_sim")}
UNITS = {"tf_em": "points", "tf_logprob": "nats/token", "em": "points", "edit_sim": "points"}


def _pct(x: float) -> str:
    return f"{x:+.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--runs", required=True, help="a directory of run directories")
    ap.add_argument("--reference", default="shared-lora")
    ap.add_argument("--plot", default=None, help="write the own - mean plot here (PNG)")
    args = ap.parse_args()

    from evaluators.report import read_scored
    from evaluators.scoring import paired_comparison, summarise

    root = Path(args.runs)
    runs = sorted(d.name for d in root.iterdir() if (d / "results.json").exists())
    if args.reference not in runs:
        raise SystemExit(f"{root}: no run {args.reference!r} (runs: {', '.join(runs)})")
    scored = {r: read_scored(root / r, args.dataset) for r in runs}
    ref = scored[args.reference]
    scoring = json.loads((root / args.reference / "results.json").read_text()).get("scoring")
    metrics = METRICS["teacher-forced" if scoring == "teacher-forced" else "generate"]
    m0, m1 = metrics

    print(f"| run | tasks | repos | {m0} | {m1} | training |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        m = summarise(scored[r], n_boot=200)["metrics"]
        res = json.loads((root / r / "results.json").read_text())
        ckpt = res.get("checkpoint")
        # the Trainer's runtime, summed over the checkpoint's training runs (per-repo-lora
        # trains one per repository)
        found = [json.loads(p.read_text()) for p in
                 (Path(ckpt).rglob("train_result.json") if ckpt else [])]
        wall = sum(f.get("wall_time_s") or 0 for f in found)
        tokens = sum(f.get("tokens") or 0 for f in found)
        train_s = f"{wall:.0f} s, {tokens / wall:.0f} tokens/s" if wall else ""
        if any(f.get("objective") == "reconstruct" for f in found):   # no token is read
            train_s = f"{wall:.0f} s of reconstruction (+ its target adapters')"
        print(f"| {r} | {len(scored[r])} | {len({s.repo_id for s in scored[r]})} | "
              f"{m[m0]['micro']:.1f} | {m[m1]['micro']:.3f} | {train_s} |")

    print(f"\nPaired against {args.reference} (run - {args.reference}; {UNITS[m0]} of {m0}, "
          f"{UNITS[m1]} of {m1}; [95% CI] (detectable)):\n")
    print(f"| run | label | tasks | repos | {m0} | {m1} |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        if r == args.reference:
            continue
        for label in LABELS:
            a = [s for s in ref if label is None or s.knowledge_source == label]
            b = [s for s in scored[r] if label is None or s.knowledge_source == label]
            if not a or not b or not {s.task_id for s in a} & {s.task_id for s in b}:
                continue
            cells = []
            for metric in metrics:
                c = paired_comparison(a, b, metric=metric)
                cells.append(f"{_pct(c['delta'])} [{_pct(c['ci'][0])}, {_pct(c['ci'][1])}] "
                             f"({c['mde']:.2f})")
            print(f"| {r} | {label or 'all'} | {c['n_tasks']} | {c['n_repos']} | {cells[0]} | {cells[1]} |")

    print("\nAudits (the run's own configuration minus each replacement, same tasks):\n")
    print(f"| run | comparison | {m0} | {m1} |")
    print("|---|---|---|---|")
    per_repo = {}
    for r in runs:
        audit = json.loads((root / r / "results.json").read_text()).get("audit")
        if not audit:
            continue
        modes = audit["modes"]
        if audit.get("mean_rank"):
            print(f"| {r} | the mean at rank {audit['mean_rank']}: largest relative error of a "
                  f"module's update {audit.get('mean_max_relative_error')} | | |")
        for mode in modes[1:]:
            em = audit[f"{modes[0]}_minus_{mode}"]
            lp = audit.get(f"{modes[0]}_minus_{mode}_tf_logprob", {})
            print(f"| {r} | {modes[0]} - {mode} | {_pct(em['delta'])} [{_pct(em['ci'][0])}, "
                  f"{_pct(em['ci'][1])}] ({em['mde']:.2f}) | "
                  + (f"{_pct(lp['delta'])} [{_pct(lp['ci'][0])}, {_pct(lp['ci'][1])}] "
                     f"({lp['mde']:.2f})" if lp else "")
                  + " |")
        label = "repository"
        own = [s for s in scored[r] if s.knowledge_source == label]
        for mode in modes[1:]:
            path = root / r / f"samples-{mode}.jsonl"
            if not path.exists():
                continue
            other = [s for s in read_scored_mode(path, args.dataset) if s.knowledge_source == label]
            c, lp = (paired_comparison(other, own, metric=m) for m in metrics)
            print(f"| {r} | {modes[0]} - {mode}, {label} label ({c['n_tasks']} tasks, "
                  f"{c['n_repos']} repos) | {_pct(c['delta'])} [{_pct(c['ci'][0])}, "
                  f"{_pct(c['ci'][1])}] ({c['mde']:.2f}) | {_pct(lp['delta'])} "
                  f"[{_pct(lp['ci'][0])}, {_pct(lp['ci'][1])}] ({lp['mde']:.2f}) |")
        # the plot's replacement: the leave-one-out mean where the audit has one
        rep = "mean" if "mean" in modes else modes[1] if len(modes) > 1 else None
        rep_path = root / r / f"samples-{rep}.jsonl"
        if rep and rep_path.exists():
            other = {s.task_id: s for s in read_scored_mode(rep_path, args.dataset)}
            diffs: dict[str, list[float]] = {}
            for s in scored[r]:
                if s.task_id in other:
                    diffs.setdefault(s.repo_id, []).append(
                        s.scores[m1] - other[s.task_id].scores[m1])
            per_repo[r] = (rep, {k: sum(v) / len(v) for k, v in diffs.items()})
    overlap_table(root, runs, scored, args.dataset, metrics)
    if per_repo:
        print(f"\nOwn minus the replacement per repository ({m1}, {UNITS[m1]}; the plot):\n")
        print("| run | own - | repositories | above 0 | min | median | max |")
        print("|---|---|---|---|---|---|---|")
        for r, (rep, d) in sorted(per_repo.items()):
            v = sorted(d.values())
            print(f"| {r} | {rep} | {len(v)} | {sum(x > 0 for x in v)} | {v[0]:+.3f} | "
                  f"{v[len(v) // 2]:+.3f} | {v[-1]:+.3f} |")
    if len(per_repo) > 1:     # do runs gain on the same repositories?
        from scipy.stats import spearmanr
        print("\nSpearman correlation of two runs' own minus replacement per repository "
              f"({m1}; the repositories both have):\n")
        print("| run | run | repositories | rho | p |")
        print("|---|---|---|---|---|")
        names = sorted(per_repo)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                common = sorted(set(per_repo[a][1]) & set(per_repo[b][1]))
                if len(common) < 3:
                    continue
                rho, p = spearmanr([per_repo[a][1][k] for k in common],
                                   [per_repo[b][1][k] for k in common])
                print(f"| {a} (own - {per_repo[a][0]}) | {b} (own - {per_repo[b][0]}) | "
                      f"{len(common)} | {rho:+.2f} | {p:.2f} |")
    if args.plot and per_repo:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(len(per_repo), 1, figsize=(10, 3.2 * len(per_repo)), squeeze=False)
        for ax, (r, (rep, d)) in zip(axes[:, 0], sorted(per_repo.items())):
            items = sorted(d.items(), key=lambda kv: kv[1])
            ax.bar(range(len(items)), [v for _, v in items],
                   color=["tab:green" if v > 0 else "tab:red" for _, v in items])
            ax.axhline(0, color="black", linewidth=0.8)
            what = "leave-one-out mean adapter" if rep == "mean" else f"{rep} adapter"
            ax.set_title(f"{r}: own - {what}, {m1} ({UNITS[m1]}), "
                         f"per repository ({len(items)})")
            ax.set_xticks([])
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nplot: {args.plot}")


def overlap_table(root: Path, runs: list[str], scored: dict, dataset: str,
                  metrics: tuple[str, str]) -> None:
    """Each audit (own - replacement) by the test task's overlap with the training tasks:
    what an adapter gains on test files it trained on is not what it gains on new ones."""
    from evaluators.report import OVERLAPS, training_overlap
    from evaluators.scoring import paired_comparison
    rows = []
    for r in runs:
        res = json.loads((root / r / "results.json").read_text())
        audit = res.get("audit")
        overlap = training_overlap(dataset, res.get("checkpoint")) if audit else None
        if not overlap or not all(s.task_id in overlap for s in scored[r]):
            continue
        modes = audit["modes"]
        for mode in modes[1:]:
            path = root / r / f"samples-{mode}.jsonl"
            if not path.exists():
                continue
            other = read_scored_mode(path, dataset)
            for group in OVERLAPS:
                a = [s for s in other if overlap[s.task_id] == group]
                b = [s for s in scored[r] if overlap[s.task_id] == group]
                if not a or not b:
                    continue
                c, lp = (paired_comparison(a, b, metric=m) for m in metrics)
                rows.append(f"| {r} | {modes[0]} - {mode} | {group} | {c['n_tasks']} | "
                            f"{c['n_repos']} | {_pct(c['delta'])} [{_pct(c['ci'][0])}, "
                            f"{_pct(c['ci'][1])}] ({c['mde']:.2f}) | {_pct(lp['delta'])} "
                            f"[{_pct(lp['ci'][0])}, {_pct(lp['ci'][1])}] ({lp['mde']:.2f}) |")
    if rows:
        print("\nAudits by the test task's overlap with the training tasks (same test "
              "function, same test file, neither):\n")
        print(f"| run | comparison | overlap | tasks | repos | {metrics[0]} | {metrics[1]} |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows))


@functools.lru_cache(maxsize=None)
def read_scored_mode(path: Path, dataset: str) -> tuple:
    """The scored tasks of an audit mode's samples file (read once: the label, overlap
    and per-repository tables all use them)."""
    from evaluators.report import read_samples
    from repopeftbench.dataset import Benchmark
    return tuple(read_samples(path, Benchmark(dataset).sha256))


if __name__ == "__main__":
    main()
