"""Dependency-resolved context on a real benchmark: coverage, added tokens, and the time
resolution takes per task against the prompt's forward pass.

    python benchmarks/bench_drc.py --dataset BENCH [--config static] \\
        [--splits test_in_repo,test_cross_repo] [--model smollm2] [--budget 4096] \\
        [--forward-sample 8] [--max-input-tokens 4096] [--limit N]

Per split: the share of tasks whose prefix imports something DRC resolves in the
repository (non-empty context), the median tokens it adds when present (the model's
tokenizer), the same within the input budget (what the ``drc`` provider prepends: the
room the prefix leaves), and the mean wall time of resolution per task (repositories parsed once, that
time included). The reference, measured in the same run: the mean time of the base
model's forward pass over ``--forward-sample`` of the split's prompts (DRC + prefix, cut
to the input budget).
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--splits", default="test_in_repo,test_cross_repo")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--budget", type=int, default=4096)
    ap.add_argument("--max-input-tokens", type=int, default=4096)
    ap.add_argument("--forward-sample", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None,
                    help="a hash sample of this many tasks per split (as evaluate --limit)")
    args = ap.parse_args()

    import torch

    from evaluators.backends.base import encode_prompt
    from evaluators.drc import Resolver, resolve
    from evaluators.models import load_model
    from repopeftbench.dataset import Benchmark

    bench = Benchmark(args.dataset)
    model, tok, _ = load_model(args.model, "cpu")

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    for split in args.splits.split(","):
        tasks = bench.tasks(args.config, split, limit=args.limit)
        resolvers: dict[str, Resolver] = {}
        added, fitted, prompts = [], [], []
        spent = 0.0   # resolution at --budget, repositories parsed once included
        for t in tasks:
            t0 = time.perf_counter()
            if t["repo_id"] not in resolvers:
                rows = bench.context(t["repo_id"], columns=["path", "content"])
                resolvers[t["repo_id"]] = Resolver({r["path"]: r["content"] for r in rows
                                                    if r["path"].endswith(".py")})
            got = resolve(t["prefix"], t["test_file"], resolvers[t["repo_id"]], args.budget, count)
            spent += time.perf_counter() - t0
            added.append(got.n_tokens)
            room = args.max_input_tokens - count(t["prefix"]) - 2   # as the drc provider
            if got.n_tokens > room:   # what the prompt carries within the input budget
                got = resolve(t["prefix"], t["test_file"], resolvers[t["repo_id"]],
                              max(0, room), count)
            fitted.append(got.n_tokens)
            prompts.append(f"{got.text}\n{t['prefix']}" if got.text else t["prefix"])
        per_task = spent / max(1, len(tasks))
        present = [a for a in added if a]
        inside = [a for a in fitted if a]
        step = max(1, len(prompts) // args.forward_sample)
        sample = prompts[::step][:args.forward_sample]
        t1 = time.perf_counter()
        with torch.inference_mode():
            for p in sample:
                model(input_ids=torch.tensor([encode_prompt(tok, p, args.max_input_tokens)]))
        forward = (time.perf_counter() - t1) / max(1, len(sample))
        print(f"{args.config}/{split}: {len(tasks)} tasks of {len(resolvers)} repositories; DRC "
              f"non-empty on {len(present)} ({100 * len(present) / max(1, len(tasks)):.1f}%), "
              f"median {statistics.median(present) if present else 0:.0f} tokens added when "
              f"present; within the input budget of {args.max_input_tokens}: non-empty on "
              f"{len(inside)} ({100 * len(inside) / max(1, len(tasks)):.1f}%), median "
              f"{statistics.median(inside) if inside else 0:.0f} tokens; resolution {1000 * per_task:.1f} ms per task against {1000 * forward:.0f} "
              f"ms for the prompt's forward pass ({args.model}, inputs cut to "
              f"{args.max_input_tokens}, mean of {len(sample)}): {per_task / forward:.3f}x")


if __name__ == "__main__":
    main()
