"""Do Code2LoRA's adapters specialise? The teacher-forced audit: own, leave-one-out mean,
shuffled and no adapter, on the same tasks.

    python benchmarks/bench_code2lora_specialisation.py --checkpoint CKPT --dataset BENCH \\
        [--config static] [--split validation_in_repo] [--limit 200] [--max-input-tokens N] \\
        [--out RUNS]

Exact match on a few hundred tasks moves in steps of several points; teacher-forced
scores (``repopeftbench evaluate --scoring teacher-forced``) are one forward pass per task
and ``tf_logprob`` a finer signal of the same question. The Code2LoRA run carries the
audit (each task with its item's own adapter, the mean of every other item's adapter,
another item's adapter, and none: the base model), the four scored together, the lower
layers shared when the adapters sit on the top layers only. Prints tf_em and tf_logprob per adapter and the paired differences (own minus each
replacement: positive means the own adapter fits its repository better) with 95% CIs over
repositories and the smallest difference each could detect. Last line:
``own-vs-mean X.XXXX [lo, hi]`` in nats per target token.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="validation_in_repo")
    ap.add_argument("--limit", type=int, default=200, help="tasks (0: every task of the split)")
    ap.add_argument("--max-input-tokens", type=int, default=None,
                    help="default: the checkpoint's training sequence length (max_seq_len)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="run directories (default: a temporary one)")
    args = ap.parse_args()

    from evaluators.backends.base import GenerationConfig
    from evaluators.harness import evaluate, read_checkpoint

    record = read_checkpoint(args.checkpoint)
    budget = args.max_input_tokens or int(record.get("options", {}).get("max_seq_len", 4096))
    model = record["model"]["name"]
    out = Path(args.out or tempfile.mkdtemp(prefix="specialisation-"))
    gen = GenerationConfig(max_input_tokens=budget)
    common = dict(limit=args.limit or None, device=args.device, generation=gen, progress=False,
                  scoring="teacher-forced")
    c2l = evaluate(args.dataset, args.config, args.split, record["method"], model, out / "c2l",
                   checkpoint=args.checkpoint, **common)
    audit = c2l.audit or {}
    print(f"{c2l.scores['n_tasks']} tasks of {args.config}/{args.split}, {c2l.scores['n_repos']} "
          f"repositories, {record['method']} checkpoint {args.checkpoint}, inputs of {budget} "
          f"tokens, scored in {c2l.wall_time_s:.0f} s")
    modes = [m for m in ("own", "mean", "shuffled", "none") if m in audit]
    for mode in modes:
        m = audit[mode]["metrics"]
        print(f"{mode:9s} adapter: tf_em {m['tf_em']['micro']:.1f}%, tf_logprob "
              f"{m['tf_logprob']['micro']:.4f}")
    for mode in reversed(modes[1:]):
        for metric, key, digits in (("tf_em", f"own_minus_{mode}", 2),
                                    ("tf_logprob", f"own_minus_{mode}_tf_logprob", 4)):
            d = audit[key]
            print(f"own-vs-{mode} {metric} {d['delta']:.{digits}f} [{d['ci'][0]:.{digits}f}, "
                  f"{d['ci'][1]:.{digits}f}]  (own adapter minus the {mode} one; detectable "
                  f"{d['mde']:.{digits}f})")
    d = audit["own_minus_mean_tf_logprob"]
    print(f"own-vs-mean {d['delta']:.4f} [{d['ci'][0]:.4f}, {d['ci'][1]:.4f}]")


if __name__ == "__main__":
    main()
