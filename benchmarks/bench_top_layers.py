"""Adapters on the top K layers with the lower layers cached, against every layer: training
tokens per second on the same examples and steps, and what it costs in quality
(teacher-forced, paired, on the same tasks).

    python benchmarks/bench_top_layers.py --dataset BENCH --out DIR [--model smollm2] \\
        [--top-layers 8] [--steps 40] [--input 256] [--splits test_in_repo,validation_in_repo,...]

Trains ``shared-lora`` twice with ``repopeftbench train`` (the same examples, seed, steps
and budget): every layer (the reference, no cache) and ``top_layers=K`` (its lower layers
computed once and cached). Prints tokens per second of each (the training's own count:
examples' tokens seen over the training's wall time; the one-off cache build is reported
apart and in the amortised figure), the ratio against the reference measured in this run,
then both checkpoints scored teacher-forced on the splits, with the paired difference
(top K minus every layer) of tf_em and tf_logprob.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--top-layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--input", type=int, default=256)
    ap.add_argument("--per-repo", type=int, default=40, help="training tasks per repository")
    ap.add_argument("--splits", default="test_in_repo,validation_in_repo,validation_cross_repo,"
                                        "test_cross_repo")
    args = ap.parse_args()

    from evaluators.backends.base import GenerationConfig
    from evaluators.harness import compare_runs, evaluate, read_scored, train
    from evaluators.scoring import paired_comparison

    out = Path(args.out)
    common = [f"max_seq_len={args.input}", "batch_size=4", f"max_steps={args.steps}",
              f"max_train_tasks_per_repo={args.per_repo}", "save_steps=10"]
    stats = {}
    for name, extra in (("all-layers", []), (f"top{args.top_layers}", [f"top_layers={args.top_layers}"])):
        t0 = time.perf_counter()
        ckpt = train("shared-lora", args.dataset, "static", out / name, model=args.model,
                     options=common + extra, progress=False)
        wall = time.perf_counter() - t0
        result = json.loads((ckpt / "shared" / "train_result.json").read_text())
        stats[name] = {"ckpt": ckpt, "tokens_per_s": result["tokens_per_s"], "train_s": result["wall_time_s"],
                       "tokens": result["tokens"], "total_s": wall, "loss": result["train_loss"]}
    ref, top = stats["all-layers"], stats[f"top{args.top_layers}"]
    print(f"shared-lora, {args.steps} steps of 4 x <= {args.input} tokens, {args.model}:")
    for name, s in stats.items():
        print(f"  {name:12s} {s['tokens_per_s']:8.1f} tokens/s in training ({s['train_s']:.0f} s), "
              f"{s['total_s']:.0f} s with model loading and the cache; final loss {s['loss']:.3f}")
    print(f"training tokens/s, top {args.top_layers} cached over every layer uncached: "
          f"{top['tokens_per_s'] / ref['tokens_per_s']:.2f}x; end to end (cache build included): "
          f"{ref['total_s'] / top['total_s']:.2f}x")
    gen = GenerationConfig(max_input_tokens=args.input)
    pooled: dict[str, list] = {"all-layers": [], f"top{args.top_layers}": []}
    for split in args.splits.split(","):
        for name, s in stats.items():
            evaluate(args.dataset, "static", split, "shared-lora", args.model, out / "runs" / split / name,
                     checkpoint=s["ckpt"], generation=gen, progress=False, scoring="teacher-forced")
            pooled[name] += read_scored(out / "runs" / split / name, args.dataset)
        for metric in ("tf_em", "tf_logprob"):
            d = compare_runs(out / "runs" / split / "all-layers",
                             out / "runs" / split / f"top{args.top_layers}", args.dataset, metric)
            print(f"{split}: top{args.top_layers} - all layers, {metric}: {d['delta']:+.3f} "
                  f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] over {d['n_tasks']} tasks of "
                  f"{d['n_repos']} repositories (detectable {d['mde']:.3f})")

    for metric in ("tf_em", "tf_logprob", "tf_token_acc"):
        d = paired_comparison(pooled["all-layers"], pooled[f"top{args.top_layers}"], metric=metric)
        print(f"all splits: top{args.top_layers} - all layers, {metric}: {d['delta']:+.3f} "
              f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] over {d['n_tasks']} tasks of "
              f"{d['n_repos']} repositories (detectable {d['mde']:.3f})")


if __name__ == "__main__":
    main()

