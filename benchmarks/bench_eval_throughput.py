"""Evaluation throughput of the harness against a naive loop, measured in the same run.

Same model, same tasks, same device: the naive loop calls ``model.generate`` once per task
(greedy, same token limits, same stop-at-newline and banned tokens). The harness, at batch
size 1 (the CPU default), orders prompts so that those sharing a prefix are neighbours and
reuses the key/value cache of the shared prefix; at larger batch sizes it batches prompts
by length with left padding and drops finished rows as it decodes.

The sharing bound comes from the prompts themselves: prompt tokens after the left
truncation (4,096 tokens unless ``--max-input-tokens`` says otherwise), over the tokens
left to compute when every shared prefix is computed once (the size of the token trie of
the prompts). Prints tasks per second of both (with ``--repeat N``, the best of N timings, the
order alternating), whether the predictions are identical, and last
``speedup X.XXx bound Y.YYx``. Runs unchanged on
CUDA with ``--device cuda``.

    python benchmarks/bench_eval_throughput.py --dataset BENCH_DIR --config static \\
        --split test_cross_repo --limit 100 [--model smollm2] [--device cpu] [--batch-size N]

``--limit N`` takes a fixed pseudo-random sample of the split, where few prompts share a
prefix; ``--group-sample N`` instead takes N tasks in the split's own order (repository,
then task id for static; commit and file order for evolution), a stretch of the split
with the prefix sharing of a whole-split evaluation.
"""
from __future__ import annotations

import argparse
import hashlib
import time

from evaluators.backends.base import GenerationBackend, GenerationConfig
from evaluators.backends.hf import HFGenerator, reference_generate
from evaluators.models import load_model
from repopeftbench.dataset import Benchmark
from repopeftbench.metrics import clean_prediction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="validation_cross_repo")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--group-sample", type=int, default=None,
                    help="N tasks in split order from a hashed starting point (instead of --limit)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="default: the backend's choice (1 on CPU, 8 on CUDA)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="time each N times, alternating which goes first; best of N (default 1)")
    ap.add_argument("--max-input-tokens", type=int, default=4096,
                    help="left truncation of the prompts (default 4096, the protocol's)")
    ap.add_argument("--scoring", choices=("generate", "teacher-forced"), default="generate",
                    help="teacher-forced: the harness's scoring of every task in one pass over "
                         "runs of nested sequences against one forward pass per task")
    args = ap.parse_args()

    bench = Benchmark(args.dataset)
    if args.group_sample:
        rows = bench.rows(args.config, args.split)
        start = int(hashlib.sha256(args.split.encode()).hexdigest(), 16) % max(1, len(rows))
        tasks = (rows[start:] + rows[:start])[:args.group_sample]
    else:
        tasks = bench.tasks(args.config, args.split, limit=args.limit)
    prompts = [t["prefix"] for t in tasks]
    model, tokenizer, _ = load_model(args.model, args.device)
    batch = args.batch_size or GenerationBackend.default_batch_size(args.device)
    harness = HFGenerator(model, tokenizer, GenerationConfig(
        batch_size=batch, max_input_tokens=args.max_input_tokens), progress=False)
    if args.scoring == "teacher-forced":
        return teacher_forced(args, tasks, harness, tokenizer)
    encoded = sorted(harness.encode(p) for p in prompts)
    n_tokens = sum(map(len, encoded))
    unique = 0      # tokens of the prompts' trie: each shared prefix counted once
    for prev, ids in zip([[]] + encoded, encoded):
        lcp = next((k for k, (a, b) in enumerate(zip(prev, ids)) if a != b), min(len(prev), len(ids)))
        unique += len(ids) - lcp
    bound = n_tokens / max(1, unique)

    def timed(fn):
        t0 = time.perf_counter()
        out = fn(prompts)
        return time.perf_counter() - t0, out

    # a warm-up of both on two prompts first (the first forward passes of a process, and
    # of each new shape, are slower), then the best of --repeat, the order alternating (harness first, then naive first, ...), so
    # that a neighbour's load falls on both alike
    harness.generate(prompts[:2])
    reference_generate(harness, prompts[:2])
    t_harness = t_naive = float("inf")
    for rep in range(args.repeat):
        runs = [("harness", harness.generate), ("naive", lambda p: reference_generate(harness, p))]
        for name, fn in (runs if rep % 2 == 0 else runs[::-1]):
            seconds, out = timed(fn)
            if name == "harness":
                t_harness, batched = min(t_harness, seconds), out
            else:
                t_naive, loop = min(t_naive, seconds), out

    raw_same = sum(a == b for a, b in zip(batched, loop))
    clean_same = sum(clean_prediction(a, t["target"]) == clean_prediction(b, t["target"])
                     for a, b, t in zip(batched, loop, tasks))
    print(f"{len(tasks)} tasks of {args.config}/{args.split}, {n_tokens} prompt tokens "
          f"(mean {n_tokens / len(tasks):.0f}), model {args.model}, device {args.device}, "
          f"batch size {batch}, inputs cut to {args.max_input_tokens} tokens, best of {args.repeat}")
    print(f"naive loop (generate per task): {t_naive:8.1f} s  {len(tasks) / t_naive:6.2f} tasks/s")
    print(f"harness:                        {t_harness:8.1f} s  {len(tasks) / t_harness:6.2f} tasks/s")
    print(f"identical predictions: {clean_same}/{len(tasks)} cleaned, {raw_same}/{len(tasks)} raw")
    print(f"prompt tokens {n_tokens}, left to compute with shared prefixes once {unique}")
    print(f"speedup {t_naive / t_harness:.2f}x bound {bound:.2f}x")


def trie_bound(seqs: list[list[int]]) -> tuple[int, int]:
    """(tokens, tokens of their trie): what sharing every common prefix once leaves."""
    encoded = sorted(seqs)
    unique = 0
    for prev, ids in zip([[]] + encoded, encoded):
        lcp = next((k for k, (a, b) in enumerate(zip(prev, ids)) if a != b), min(len(prev), len(ids)))
        unique += len(ids) - lcp
    return sum(map(len, encoded)), unique


def teacher_forced(args, tasks: list[dict], gen, tokenizer) -> None:
    """Teacher-forced scoring: the harness's runs of nested sequences and cache reuse
    against a forward pass per task (the same function, one task per call), on prompt +
    target sequences; the bound is their tokens over their trie's."""
    from evaluators.backends.base import encode_target
    from evaluators.backends.teacher_forcing import score_sequences

    prompts = [gen.encode(t["prefix"]) for t in tasks]
    targets = [encode_target(tokenizer, t["target"]) for t in tasks]
    n_tokens, unique = trie_bound([p + t for p, t in zip(prompts, targets)])

    def naive():
        return [score_sequences(gen, [p], [t])[0] for p, t in zip(prompts, targets)]

    def shared():
        return score_sequences(gen, prompts, targets)

    score_sequences(gen, prompts[:2], targets[:2])          # warm-up
    best = {"harness": float("inf"), "naive": float("inf")}
    out = {}
    for rep in range(args.repeat):
        runs = [("harness", shared), ("naive", naive)]
        for name, fn in (runs if rep % 2 == 0 else runs[::-1]):
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    same = sum(abs(a.logprob - b.logprob) < 1e-3 and a.em == b.em and a.n_correct == b.n_correct
               for a, b in zip(out["harness"], out["naive"]))
    print(f"{len(tasks)} tasks of {args.config}/{args.split}, {n_tokens} prompt + target tokens "
          f"(mean {n_tokens / len(tasks):.0f}), model {args.model}, device {args.device}, inputs "
          f"cut to {args.max_input_tokens} tokens, teacher-forced, best of {args.repeat}")
    print(f"naive (a forward pass per task): {best['naive']:8.1f} s  {len(tasks) / best['naive']:6.2f} tasks/s")
    print(f"harness:                         {best['harness']:8.1f} s  {len(tasks) / best['harness']:6.2f} tasks/s")
    print(f"equal scores: {same}/{len(tasks)}")
    print(f"sequence tokens {n_tokens}, left to compute with shared prefixes once {unique}")
    bound = n_tokens / max(1, unique)
    print(f"speedup {best['naive'] / best['harness']:.2f}x bound {bound:.2f}x")


if __name__ == "__main__":
    main()
