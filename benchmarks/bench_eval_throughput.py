"""Evaluation throughput of the harness against a naive loop, measured in the same run.

Same model, same tasks, same device: the naive loop calls ``model.generate`` once per task
(greedy, same token limits, same stop-at-newline and banned tokens); the harness batches by
length with left padding. Prints tasks per second of both, the speed-up, and whether the
predictions are identical. Runs unchanged on CUDA with ``--device cuda``.

    python benchmarks/bench_eval_throughput.py --dataset BENCH_DIR --split validation_cross_repo \\
        --limit 300 [--model smollm2] [--device cpu] [--batch-size 8]
"""
from __future__ import annotations

import argparse
import time

import torch
from transformers import StoppingCriteriaList

from evaluators.generation import GenerationConfig, HFGenerator, _StopAtNewline
from evaluators.models import load_model
from repopeftbench.dataset import Benchmark
from repopeftbench.metrics import clean_prediction


@torch.inference_mode()
def naive(model, tokenizer, prompts: list[str], config: GenerationConfig, banned, newline_ids) -> list[str]:
    out = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"][:, -config.max_input_tokens:]
        ids = ids.to(model.device)
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=config.max_new_tokens, do_sample=False,
                             bad_words_ids=banned or None,
                             stopping_criteria=StoppingCriteriaList([_StopAtNewline(newline_ids)]),
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             temperature=None, top_p=None, top_k=None)
        out.append(tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
    return out


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
    loop = naive(model, tokenizer, prompts, config, harness.banned, harness.newline_ids)
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
