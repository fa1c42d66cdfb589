"""Do Code2LoRA's adapters specialise? The teacher-forced audit: own, leave-one-out mean,
shuffled and no adapter, on the same tasks.

    python benchmarks/bench_code2lora_specialisation.py --checkpoint CKPT --dataset BENCH \\
        [--config static] [--split validation_in_repo] [--limit 200] [--max-input-tokens N] \\
        [--out RUNS]

Exact match on a few hundred tasks moves in steps of several points; teacher-forced
scores (``repopeftbench evaluate --scoring teacher-forced``) are one forward pass per task
and ``tf_logprob`` a finer signal of the same question. The Code2LoRA run carries the
audit (each task with its item's own adapter, the mean of every other item's adapter, and
another item's adapter); the base model (``pretrained``) on the same tasks is the "none"
row. Prints tf_em and tf_logprob per adapter and the paired differences (own minus each
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
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--max-input-tokens", type=int, default=None,
                    help="default: the checkpoint's training sequence length (max_seq_len)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="run directories (default: a temporary one)")
    args = ap.parse_args()

    from evaluators.backends.base import GenerationConfig
    from evaluators.harness import evaluate, read_checkpoint, read_scored
    from evaluators.scoring import paired_comparison

    record = read_checkpoint(args.checkpoint)
    budget = args.max_input_tokens or int(record.get("options", {}).get("max_seq_len", 4096))
    model = record["model"]["name"]
    out = Path(args.out or tempfile.mkdtemp(prefix="specialisation-"))
    gen = GenerationConfig(max_input_tokens=budget)
    common = dict(limit=args.limit, device=args.device, generation=gen, progress=False,
                  scoring="teacher-forced")
    c2l = evaluate(args.dataset, args.config, args.split, record["method"], model, out / "c2l",
                   checkpoint=args.checkpoint, **common)
    evaluate(args.dataset, args.config, args.split, "pretrained", model, out / "none", **common)
    audit = c2l.audit or {}
    print(f"{c2l.scores['n_tasks']} tasks of {args.config}/{args.split}, {c2l.scores['n_repos']} "
          f"repositories, {record['method']} checkpoint {args.checkpoint}, inputs of {budget} tokens")
    for mode in ("own", "mean", "shuffled"):
        m = audit[mode]["metrics"]
        print(f"{mode:9s} adapter: tf_em {m['tf_em']['micro']:.1f}%, tf_logprob "
              f"{m['tf_logprob']['micro']:.4f}")
    own = read_scored(out / "c2l", args.dataset)
    none = read_scored(out / "none", args.dataset)
    base = paired_comparison(none, own, metric="tf_logprob")
    m = {s.task_id: s for s in none}
    print(f"none      adapter: tf_em {100 * sum(x.scores['tf_em'] for x in m.values()) / len(m):.1f}%, "
          f"tf_logprob {sum(x.scores['tf_logprob'] for x in m.values()) / len(m):.4f}")
    rows = [("none", base)] + [(mode, audit[f"own_minus_{mode}_tf_logprob"]) for mode in ("shuffled", "mean")]
    for mode, d in rows:
        print(f"own-vs-{mode} {d['delta']:.4f} [{d['ci'][0]:.4f}, {d['ci'][1]:.4f}]  (tf_logprob "
              f"with the own adapter minus with the {mode} one, nats per target token; "
              f"detectable {d['mde']:.4f})")


if __name__ == "__main__":
    main()
