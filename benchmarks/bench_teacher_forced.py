"""Teacher-forced scoring against generation on the same real tasks: agreement of tf_em
with generated strict_em (and the cause of every disagreement), tasks per second of each,
and the paired spread of tf_logprob against that of em (power per task).

    python benchmarks/bench_teacher_forced.py --dataset BENCH --splits test_in_repo,test_cross_repo \\
        [--config static] [--model smollm2] [--max-input-tokens 1024] [--limit N] --out RUNS \\
        [--method pretrained] [--method-b rag-bm25]

Each split is scored by ``repopeftbench evaluate`` twice (--scoring generate, then
teacher-forced), from an empty prediction cache for the timing; the ratio printed is
teacher-forced tasks per second over generated tasks per second, measured in this run on
the same tasks with the same model and budget. Disagreements are classified from the
generated line and the tokenizer: ``re-tokenisation`` (the same text, spelled by greedy
decoding with other tokens than the target tokenised alone), ``whitespace before the
stop`` (greedy wrote the target, then spaces, then the line break), ``no line break``
(the target was followed by more text on the line: strict_em's cut is lenient there),
and ``other``. With ``--method-b``, the paired spread of per-task differences between the
two methods is reported for em and for tf_logprob, with the tasks each needs to detect
the same standardised effect.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path


def _samples(run: Path) -> dict[str, dict]:
    lines = (run / "samples.jsonl").read_text().splitlines()[1:]
    return {r["task_id"]: r for r in map(json.loads, lines)}


def _raw(run: Path) -> dict[str, str]:
    lines = (run / "predictions.jsonl").read_text().splitlines()[1:]
    return {r["task_id"]: r.get("raw", r["prediction"]) for r in map(json.loads, lines)}


def classify(raw: str, target: str, tokenizer) -> str:
    from evaluators.backends.base import encode_target
    line = raw.split("\n")[0]
    if "\n" not in raw:
        return "no line break within the token limit"
    if line.strip() == target.strip() and line.rstrip() != line:
        return "whitespace before the stop"
    if line.strip() == target.strip():
        ids = tokenizer(raw, add_special_tokens=False)["input_ids"]
        return "re-tokenisation" if ids[:len(encode_target(tokenizer, target))] != \
            encode_target(tokenizer, target) else "other (same text and tokens)"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--splits", default="test_in_repo,test_cross_repo")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--method", default="pretrained")
    ap.add_argument("--method-b", default=None)
    ap.add_argument("--checkpoint-b", default=None, help="checkpoint of a trained --method-b")
    ap.add_argument("--max-input-tokens", type=int, default=1024)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import numpy as np

    from evaluators.backends.base import GenerationConfig
    from evaluators.harness import evaluate
    from evaluators.models import load_model
    from evaluators.scoring import POWER_FACTOR
    from repopeftbench.dataset import Benchmark

    out = Path(args.out)
    os.environ.setdefault("REPOPEFTBENCH_CACHE", str(out / "cache"))   # timings from empty
    gen_cfg = GenerationConfig(max_input_tokens=args.max_input_tokens)
    bench = Benchmark(args.dataset)
    _, tok, _ = load_model(args.model, "cpu")
    agree = n = positives = tf_positives = both = 0
    causes: Counter = Counter()
    times = {"generate": 0.0, "teacher-forced": 0.0}
    pairs: dict[str, list] = {"em": [], "tf_logprob": [], "tf_em": []}
    for split in args.splits.split(","):
        tasks = {t["task_id"]: t for t in bench.tasks(args.config, split, limit=args.limit)}
        for method in [args.method] + ([args.method_b] if args.method_b else []):
            ckpt = args.checkpoint_b if method == args.method_b else None
            for scoring in ("generate", "teacher-forced"):
                t0 = time.perf_counter()
                evaluate(args.dataset, args.config, split, method, args.model,
                         out / split / f"{method}-{scoring}", limit=args.limit, generation=gen_cfg,
                         progress=False, scoring=scoring, checkpoint=ckpt)
                if method == args.method:
                    times[scoring] += time.perf_counter() - t0
        gen = _samples(out / split / f"{args.method}-generate")
        tf = _samples(out / split / f"{args.method}-teacher-forced")
        raw = _raw(out / split / f"{args.method}-generate")
        for tid, g in gen.items():
            n += 1
            same = bool(g["strict_em"]) == bool(tf[tid]["tf_em"])
            agree += same
            positives += bool(g["strict_em"])
            tf_positives += bool(tf[tid]["tf_em"])
            both += bool(g["strict_em"]) and bool(tf[tid]["tf_em"])
            if not same:
                kind = "strict_em 1, tf_em 0" if g["strict_em"] else "strict_em 0, tf_em 1"
                causes[f"{kind}: {classify(raw[tid], tasks[tid]['target'], tok)}"] += 1
        if args.method_b:
            gb = _samples(out / split / f"{args.method_b}-generate")
            tb = _samples(out / split / f"{args.method_b}-teacher-forced")
            for tid in gen:
                pairs["em"].append(gb[tid]["em"] - gen[tid]["em"])
                pairs["tf_em"].append(tb[tid]["tf_em"] - tf[tid]["tf_em"])
                pairs["tf_logprob"].append(tb[tid]["tf_logprob"] - tf[tid]["tf_logprob"])
    print(f"{n} tasks ({args.config}: {args.splits}), {args.method}, {args.model}, inputs of "
          f"{args.max_input_tokens} tokens")
    print(f"tf_em agrees with generated strict_em on {agree}/{n} tasks ({100 * agree / n:.1f}%); "
          f"strict_em 1 on {positives}, tf_em 1 on {tf_positives}, both on {both}")
    for cause, k in causes.most_common():
        print(f"  {k:4d}  {cause}")
    rate = {k: n / v for k, v in times.items()}
    print(f"tasks per second: generate {rate['generate']:.3f}, teacher-forced "
          f"{rate['teacher-forced']:.3f}: ratio {rate['teacher-forced'] / rate['generate']:.2f}x "
          f"(reference: generation, same tasks, model and budget, this run)")
    if args.method_b:
        print(f"paired per-task spread, {args.method_b} - {args.method}:")
        for metric, diffs in pairs.items():
            d = np.array(diffs)
            sd, mean = float(d.std(ddof=1)), float(d.mean())
            z = mean / sd if sd else 0.0
            need = int(np.ceil((POWER_FACTOR / abs(z)) ** 2)) if z else None
            print(f"  {metric:10s} mean {mean:+.4f}, sd {sd:.4f}, standardised effect {z:+.3f}: "
                  f"{need if need else '-'} tasks to detect it (80% power, two-sided 5%, tasks "
                  f"independent)")


if __name__ == "__main__":
    main()
