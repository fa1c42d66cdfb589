"""What a leave-one-out mean adapter costs to make, for a per-layer (Text-to-LoRA) head.

    python benchmarks/bench_mean_adapter.py [--items 66] [--means 3] [--layers 8]

The audit's "mean" of item i is the mean weight update of every other item's generated
adapter. With 65 items of rank 16 it is of full rank on every module, and
``Code2LoRABundle.mean_adapter`` writes it as the update and a shared identity. The
reference, measured in the same run on the same updates, is what it did before: an SVD
of each module's float64 mean update, its factors the square-rooted singular vectors.
The shapes are Qwen2.5-Coder-0.5B's (hidden 896, intermediate 4864, 2 key/value heads of
64), on its top ``--layers`` layers; the head (random weights, trunk 256, rank 16) reads
384-wide vectors, as from MiniLM. No model is loaded. Prints seconds per mean for both,
their ratio, and that the two adapters make the same update.
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from code2lora_models.bundle import Code2LoRABundle
from code2lora_models.heads import HeadConfig
from code2lora_models.hypernetwork import Code2LoRA, HypernetConfig

QWEN_05B = {"q_proj": (896, 896), "k_proj": (896, 128), "v_proj": (896, 128),
            "o_proj": (896, 896), "gate_proj": (896, 4864), "up_proj": (896, 4864),
            "down_proj": (4864, 896)}   # (in, out)


def svd_factors(total: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: the factorisation of the mean update the previous version made."""
    u, sv, vh = torch.linalg.svd(total / n, full_matrices=False)
    k = max(1, int((sv > sv[0] * 1e-6).sum()))
    root = sv[:k].sqrt()
    return (root[:, None] * vh[:k]).float(), (u[:, :k] * root[None, :]).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=66)
    ap.add_argument("--means", type=int, default=3, help="leave-one-out means timed")
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    layers = {t: [f"model.layers.{i}.{t}" for i in range(24 - args.layers, 24)] for t in QWEN_05B}
    net = Code2LoRA(384, HypernetConfig(head=HeadConfig(kind="per_layer", hidden=256, r=16)),
                    QWEN_05B, layers)
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    z = torch.randn(args.items, 384)
    holder = SimpleNamespace(hyper=net, base_model="")
    t0 = time.perf_counter()
    sums = Code2LoRABundle.update_sums(holder, z)
    t_sums = time.perf_counter() - t0
    new = ref = worst = 0.0
    for i in range(args.means):
        t0 = time.perf_counter()
        mean = Code2LoRABundle.mean_adapter(holder, z, f"loo{i}", leave_out=i, sums=sums)
        new += time.perf_counter() - t0
        t0 = time.perf_counter()                 # the reference, as mean_adapter did it
        dense, _ = sums
        own = net(z[i:i + 1])
        factors = {}
        for path, total in dense.items():
            a, b = own[path]
            left = total - torch.einsum("mor,mri->oi", b.double(), a.double())
            factors[path] = svd_factors(left, args.items - 1)
        ref += time.perf_counter() - t0
        worst = max(worst, max(float((mean.B[p] @ mean.A[p] - fb @ fa).abs().max()
                                     / (fb @ fa).abs().max()) for p, (fa, fb) in factors.items()))
    print(f"{args.items} items, Qwen2.5-Coder-0.5B shapes on {args.layers} layers, "
          f"{torch.get_num_threads()} threads; update sums once: {t_sums:.1f} s")
    print(f"mean_adapter (full rank, no SVD): {new / args.means:.2f} s per mean")
    print(f"reference (SVD per module):       {ref / args.means:.2f} s per mean")
    print(f"ratio reference / mean_adapter:   {ref / new:.1f}x; largest relative "
          f"difference of the updates: {worst:.1e}")


if __name__ == "__main__":
    with torch.no_grad():       # as in an audit: no graph for either
        main()
