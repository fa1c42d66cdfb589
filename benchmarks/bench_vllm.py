"""The vLLM backend against the HF backend on real tasks with several adapters mixed:
tasks per second of each (model load excluded, engine start reported apart) and how many
predictions are identical.

    python benchmarks/bench_vllm.py --dataset BENCH --checkpoint PER_REPO_LORA_CKPT \\
        [--split test_in_repo] [--tasks 100] [--adapters 8] [--model smollm2] \\
        [--max-input-tokens 256] [--base-share 0.25]

Run it in the vLLM environment (see the README). The tasks: ``--tasks`` of the split from
the ``--adapters`` repositories with the most tasks, each row with its repository's
per-repository LoRA adapter (a ``per-repo-lora`` checkpoint), and ``--base-share`` of them
on the base model. Both backends get the same requests in the same order; the HF backend
is the reference, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--checkpoint", required=True, help="a per-repo-lora checkpoint directory")
    ap.add_argument("--split", default="test_in_repo")
    ap.add_argument("--config", default="static")
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--adapters", type=int, default=8)
    ap.add_argument("--base-share", type=float, default=0.25)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max-input-tokens", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--backend-option", action="append", default=[])
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    args = ap.parse_args()

    from evaluators.backends import make_backend
    from evaluators.backends.base import GenerationConfig, Request
    from repopeftbench.dataset import Benchmark

    index = json.loads((Path(args.checkpoint) / "adapters.json").read_text())
    tasks = Benchmark(args.dataset).tasks(args.config, args.split)
    by_repo: dict[str, list[dict]] = {}
    for t in tasks:
        if t["repo_id"] in index:
            by_repo.setdefault(t["repo_id"], []).append(t)
    repos = sorted(by_repo, key=lambda r: (-len(by_repo[r]), r))[:args.adapters]
    per = -(-args.tasks // len(repos))
    chosen = [t for r in repos for t in by_repo[r][:per]][:args.tasks]
    every = max(1, round(1 / args.base_share)) if args.base_share > 0 else 0
    requests = [Request(t["prefix"], None if every and i % every == 0 else
                        Path(args.checkpoint) / index[t["repo_id"]])
                for i, t in enumerate(chosen)]
    config = GenerationConfig(max_new_tokens=args.max_new_tokens,
                              max_input_tokens=args.max_input_tokens)
    n_base = sum(r.adapter is None for r in requests)
    print(f"{len(requests)} tasks of {len(repos)} repositories ({len(repos)} adapters, "
          f"{n_base} rows on the base model), {args.split}, inputs of {args.max_input_tokens} "
          f"tokens, {args.model}")

    hf = make_backend("hf", args.model, "cpu", config, progress=False)
    t0 = time.perf_counter()
    want = hf.generate(requests)
    hf_s = time.perf_counter() - t0
    del hf

    v = make_backend("vllm", args.model, "cpu", config, progress=False, options=args.backend_option)
    t0 = time.perf_counter()
    v.generate([next(r for r in requests if r.adapter is not None)])   # starts the engine
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = v.generate(requests)
    vllm_s = time.perf_counter() - t0
    v.close()

    same = sum(a == b for a, b in zip(got, want))
    same_base = sum(a == b for a, b, r in zip(got, want, requests) if r.adapter is None)
    figures = {"tasks": len(requests), "adapters": len(repos), "base_rows": n_base,
               "hf_s": round(hf_s, 2), "vllm_s": round(vllm_s, 2),
               "vllm_engine_start_s": round(start_s, 2),
               "hf_tasks_per_s": round(len(requests) / hf_s, 3),
               "vllm_tasks_per_s": round(len(requests) / vllm_s, 3),
               "speedup": round(hf_s / vllm_s, 2), "identical": same,
               "identical_base_rows": same_base}
    print(f"HF backend (reference): {hf_s:.1f} s, {figures['hf_tasks_per_s']} tasks/s")
    print(f"vLLM backend: {vllm_s:.1f} s, {figures['vllm_tasks_per_s']} tasks/s "
          f"({figures['speedup']}x the HF backend; the engine started in {start_s:.1f} s)")
    print(f"identical predictions: {same}/{len(requests)} ({same_base}/{n_base} of the base rows)")
    for i, (a, b) in enumerate(zip(want, got)):
        if a != b:
            print(f"  differs, task {chosen[i]['task_id']}: hf {a!r} vllm {b!r}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
