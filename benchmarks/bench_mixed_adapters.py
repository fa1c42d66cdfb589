"""Mixed-adapter throughput: tasks/s when a batch mixes 8 per-repository LoRA adapters, over
tasks/s on the same tasks with one adapter, in the same run (goal: at least 0.8).

    python benchmarks/bench_mixed_adapters.py --dataset bench/ --split test_in_repo \
        --limit 48 --batch-size 8 [--model smollm2] [--device cpu]

The adapters are random rank-16 LoRA adapters on every projection (the publication's
shape); their values do not matter for speed. Both runs use the same backend, prompts
and batch size; only the adapter assignment differs.
"""
from __future__ import annotations

import argparse
import time

import torch

from evaluators.backends.base import AdapterWeights, GenerationConfig, Request
from evaluators.backends.hf import HFBackend, HFOptions
from evaluators.lora.config import LoraSpec
from evaluators.lora.model import LoraAdapter
from evaluators.models import load_model
from repopeftbench.dataset import Benchmark


def random_adapter(model, spec: LoraSpec, seed: int) -> LoraAdapter:
    g = torch.Generator().manual_seed(seed)
    A, B = {}, {}
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and spec.matches(path):
            A[path] = torch.randn(spec.r, module.in_features, generator=g) * 0.01
            B[path] = torch.randn(module.out_features, spec.r, generator=g) * 0.01
    return LoraAdapter(spec, A, B, name=f"random-{seed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="test_in_repo")
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--adapters", type=int, default=8)
    args = ap.parse_args()

    tasks = Benchmark(args.dataset).tasks(args.config, args.split, limit=args.limit)
    model, tokenizer, _ = load_model(args.model, args.device)
    spec = LoraSpec()
    adapters = [random_adapter(model, spec, i) for i in range(args.adapters)]
    backend = HFBackend(model, tokenizer, GenerationConfig(), progress=False,
                        options=HFOptions(batch_size=args.batch_size))
    # adapters are passed as in-memory weights (what a hypernetwork produces)
    weights = [AdapterWeights(a.name, a.peft_config(), a.peft_tensors()) for a in adapters]

    def run(assign) -> tuple[float, list[str]]:
        reqs = [Request(t["prefix"], weights[assign(i)]) for i, t in enumerate(tasks)]
        backend.generate(reqs[:2])  # warm-up: loads and caches the adapters
        t0 = time.perf_counter()
        out = backend.generate(reqs)
        return time.perf_counter() - t0, out

    one_s, _ = run(lambda i: 0)
    mixed_s, _ = run(lambda i: i % len(weights))
    one_tps, mixed_tps = len(tasks) / one_s, len(tasks) / mixed_s
    print(f"{len(tasks)} tasks of {args.config}/{args.split}, batch size {args.batch_size}, "
          f"{args.device}")
    print(f"one adapter:       {one_s:8.1f} s  {one_tps:6.3f} tasks/s")
    print(f"{len(weights)} adapters mixed: {mixed_s:8.1f} s  {mixed_tps:6.3f} tasks/s")
    print(f"ratio mixed/one {mixed_tps / one_tps:.2f}")


if __name__ == "__main__":
    main()
