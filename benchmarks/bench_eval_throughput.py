"""Evaluation throughput of the harness against a naive loop, measured in the same run.

Same model, same tasks, same device: the naive loop calls ``model.generate`` once per task
(greedy, same token limits, same stop-at-newline and banned tokens); the harness batches
prompts by length with left padding and drops finished rows from the batch as it decodes. Prints tasks per second of both, the speed-up, and whether the
predictions are identical. Runs unchanged on CUDA with ``--device cuda``.

    python benchmarks/bench_eval_throughput.py --dataset BENCH_DIR --split validation_cross_repo \\
        --limit 300 [--model smollm2] [--device cpu] [--batch-size 8]
"""
from __future__ import annotations

import argparse
import time

from evaluators.generation import GenerationConfig, HFGenerator, reference_generate
from evaluators.models import load_model
from repopeftbench.dataset import Benchmark
from repopeftbench.metrics import clean_prediction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="validation_cross_repo")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    tasks = Benchmark(args.dataset).tasks(args.config, args.split, limit=args.limit)
    prompts = [t["prefix"] for t in tasks]
    model, tokenizer, _ = load_model(args.model, args.device)
    config = GenerationConfig(batch_size=args.batch_size)
    harness = HFGenerator(model, tokenizer, config, progress=False)
    n_tokens = sum(len(harness.encode(p)) for p in prompts)

    t0 = time.perf_counter()
    batched = harness.generate(prompts)
    t_harness = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = reference_generate(harness, prompts)
    t_naive = time.perf_counter() - t0

    raw_same = sum(a == b for a, b in zip(batched, loop))
    clean_same = sum(clean_prediction(a, t["target"]) == clean_prediction(b, t["target"])
                     for a, b, t in zip(batched, loop, tasks))
    print(f"{len(tasks)} tasks of {args.config}/{args.split}, {n_tokens} prompt tokens "
          f"(mean {n_tokens / len(tasks):.0f}), model {args.model}, device {args.device}, "
          f"batch size {args.batch_size}")
    print(f"naive loop (generate per task): {t_naive:8.1f} s  {len(tasks) / t_naive:6.2f} tasks/s")
    print(f"harness (length-batched):       {t_harness:8.1f} s  {len(tasks) / t_harness:6.2f} tasks/s")
    print(f"speed-up harness / naive: {t_naive / t_harness:.2f}x")
    print(f"identical predictions: {clean_same}/{len(tasks)} cleaned, {raw_same}/{len(tasks)} raw")


if __name__ == "__main__":
    main()
