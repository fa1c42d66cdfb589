"""Do Code2LoRA's adapters specialise? Teacher-forced loss with own, mean and shuffled adapters.

    python benchmarks/bench_code2lora_specialisation.py --checkpoint CKPT --dataset BENCH \\
        [--config static] [--split validation_in_repo] [--limit 200] [--max-seq-len 512]

Exact match on a few hundred tasks moves in steps of several points; the cross-entropy of
the target (+ EOS) given the prefix is a finer signal of the same question. For each task
the loss is computed with the repository's (or commit's) own generated adapter, with the
mean adapter and with the shuffled one (as in the evaluation audit), and with no adapter
as the reference. Prints mean loss per token for each, and the paired differences
(replacement minus own: positive means the own adapter fits its repository better) with
95% bootstrap intervals over repositories. Last line: ``own-vs-mean X.XXXX [lo, hi]``.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="validation_in_repo")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--max-seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()

    from code2lora_models.bundle import Code2LoRABundle
    from code2lora_models.methods import Code2LoRAEvo, Code2LoRAStatic
    from code2lora_models.training import row_losses
    from evaluators.lora.model import PerRowLora
    from evaluators.models import load_model
    from evaluators.registry import RunContext
    from evaluators.training import CompletionCollator, encode_example
    from repopeftbench.dataset import Benchmark

    bench = Benchmark(args.dataset)
    bundle = Code2LoRABundle.load(f"{args.checkpoint}/hypernetwork")
    model, tok, _ = load_model(bundle.base_model, "cpu")
    bundle.attach_encoder("cpu", model, tok)
    tasks = bench.tasks(args.config, args.split, limit=args.limit)
    method = (Code2LoRAEvo if bundle.kind == "evo" else Code2LoRAStatic)(
        RunContext(model_name=bundle.base_model))
    method.bundle, method.bench = bundle, bench
    method.prepare(tasks)                       # code vectors, mean adapter, shuffle
    keys = [method.item(t) for t in tasks]
    z = method._z
    lora = PerRowLora(model, bundle.hyper.spec)
    collate = CompletionCollator(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    with torch.no_grad():
        mean_factors = {p: (torch.stack([a]), torch.stack([b])) for p, (a, b) in
                        ((p, (method._mean.tensors[f"base_model.model.{p}.lora_A.weight"],
                              method._mean.tensors[f"base_model.model.{p}.lora_B.weight"]))
                         for p in lora.layers)}
        losses = {m: [] for m in ("none", "own", "mean", "shuffled")}
        for start in range(0, len(tasks), args.batch):
            part = tasks[start:start + args.batch]
            batch = collate([encode_example(tok, t["prefix"], t["target"], args.max_seq_len) for t in part])
            n = len(part)
            for mode in losses:
                if mode == "none":
                    lora.clear()
                elif mode == "mean":
                    lora.set_batch({p: a.expand(n, -1, -1) for p, (a, b) in mean_factors.items()},
                                   {p: b.expand(n, -1, -1) for p, (a, b) in mean_factors.items()},
                                   bundle.hyper.scale(n, z))
                else:
                    src = [keys[start + i] if mode == "own" else method._partner[keys[start + i]]
                           for i in range(n)]
                    factors = bundle.hyper(z[torch.tensor([method._row[k] for k in src])])
                    lora.set_batch({p: a for p, (a, b) in factors.items()},
                                   {p: b for p, (a, b) in factors.items()}, bundle.hyper.scale(n, z))
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                total, count = row_losses(logits, batch["labels"])
                losses[mode] += (total / count.clamp(min=1)).tolist()
    repos = sorted({t["repo_id"] for t in tasks})
    by_repo = {r: [i for i, t in enumerate(tasks) if t["repo_id"] == r] for r in repos}
    print(f"{len(tasks)} tasks of {args.config}/{args.split}, {len(repos)} repositories, "
          f"{bundle.kind} checkpoint {args.checkpoint}")
    for mode, v in losses.items():
        print(f"mean loss per token, {mode:9s} adapter: {np.mean(v):.4f}")
    rng = np.random.default_rng(0)
    for mode in ("none", "shuffled", "mean"):
        diff = np.array(losses[mode]) - np.array(losses["own"])
        per_repo = np.array([diff[by_repo[r]].mean() for r in repos])
        boots = per_repo[rng.integers(0, len(repos), (2000, len(repos)))].mean(1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        print(f"own-vs-{mode} {per_repo.mean():.4f} [{lo:.4f}, {hi:.4f}]  "
              f"(loss with the {mode} adapter minus own, macro over repositories)")


if __name__ == "__main__":
    main()
