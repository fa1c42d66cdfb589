"""Adapter generation time of the Code2LoRA heads, batched, against reading a PEFT adapter.

    python benchmarks/bench_adapter_generation.py [--model smollm2] [--batch 64] [--repeat 20]

For the base model's LoRA layout (rank 16, every projection), times the hypernetwork
turning ``--batch`` code vectors into adapters (the factors every layer uses, ready for the
per-row LoRA layer), per adapter, for the direct and the per-layer head. The reference,
measured in the same run, is reading one adapter of the same layout from a PEFT directory
(safetensors) into memory: what a method with stored per-repository adapters pays instead.
The last line reads ``generation X.XX ms/adapter (direct), reference Y.YY ms, ratio Z.ZZx``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _time(fn, repeat: int) -> float:
    fn()                                   # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--d-in", type=int, default=768, help="code vector size (MiniLM: 2 x 384)")
    args = ap.parse_args()

    from code2lora_models.heads import HeadConfig
    from code2lora_models.hypernetwork import Code2LoRA, HypernetConfig, module_layout
    from evaluators.lora.model import LoraAdapter, PerRowLora
    from evaluators.models import load_model

    model, _, _ = load_model(args.model, "cpu")
    shapes, layers = module_layout(PerRowLora(model).layers)
    z = torch.randn(args.batch, args.d_in)
    results = {}
    for kind in ("direct", "per_layer"):
        torch.manual_seed(0)
        net = Code2LoRA(args.d_in, HypernetConfig(head=HeadConfig(kind=kind)), shapes, layers).eval()
        with torch.inference_mode():
            results[kind] = _time(lambda: net(z), args.repeat) / args.batch
        n_params = sum(p.numel() for p in net.parameters())
        print(f"{kind:9s} head: {n_params / 1e6:.1f} M parameters, "
              f"{1000 * results[kind]:.2f} ms per adapter at batch {args.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        adapter = net.adapters(z[:1], ["ref"])[0]
        adapter.save(Path(tmp) / "a")
        reference = _time(lambda: LoraAdapter.load(Path(tmp) / "a"), args.repeat)
    print(f"reference: reading one PEFT adapter of the same layout: {1000 * reference:.2f} ms")
    print(f"generation {1000 * results['direct']:.2f} ms/adapter (direct), reference "
          f"{1000 * reference:.2f} ms, ratio {results['direct'] / reference:.2f}x")


if __name__ == "__main__":
    main()
