"""DRC's budget cut: the estimated cut (each definition's tokens counted once, then one
exact check) against the reference that tokenises the whole block after every cut,
measured in the same run on real tasks: time per task and identical blocks.

    python benchmarks/bench_drc_cut.py --dataset BENCH [--split test_in_repo] [--limit 60]
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="test_in_repo")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--budget", type=int, default=4096)
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from evaluators.drc import Resolver, resolve
    from evaluators.models import resolve_model
    from repopeftbench.dataset import Benchmark

    bench = Benchmark(args.dataset)
    tok = AutoTokenizer.from_pretrained(resolve_model(args.model))

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    tasks = bench.tasks(args.config, args.split, limit=args.limit)
    resolvers = {}
    for t in tasks:                        # parsed once, outside the timings
        if t["repo_id"] not in resolvers:
            rows = bench.context(t["repo_id"], columns=["path", "content"])
            resolvers[t["repo_id"]] = Resolver({r["path"]: r["content"] for r in rows
                                                if r["path"].endswith(".py")})
            resolvers[t["repo_id"]].candidates(t["prefix"], t["test_file"])
    out = {}
    for estimate in (False, True):
        t0 = time.perf_counter()
        out[estimate] = [resolve(t["prefix"], t["test_file"], resolvers[t["repo_id"]], args.budget,
                                 count, estimate=estimate) for t in tasks]
        out[estimate, "s"] = time.perf_counter() - t0
    ref, new = out[False, "s"], out[True, "s"]
    same = sum(a.text == b.text for a, b in zip(out[False], out[True]))
    print(f"{len(tasks)} tasks of {args.split}, budget {args.budget}, {args.model}'s tokenizer")
    print(f"reference (tokenise after every cut): {1000 * ref / len(tasks):.0f} ms per task")
    print(f"estimated cut: {1000 * new / len(tasks):.0f} ms per task ({ref / new:.1f}x faster); "
          f"identical blocks {same}/{len(tasks)}; all within budget: "
          f"{all(r.n_tokens <= args.budget for r in out[True])}")


if __name__ == "__main__":
    main()
