"""What an adapter audit costs: generated against teacher-forced, and teacher-forced with
the configurations scored together (the lower layers once) against one after another.

    python benchmarks/bench_tf_audit.py --checkpoint CKPT --dataset BENCH \\
        [--config static] [--split test_in_repo] [--limit 40] --out RUNS

The checkpoint is a Code2LoRA one (its audit: own, leave-one-out mean, shuffled, none);
with ``top_layers=K`` its adapters sit on the top K layers. Three runs of ``evaluate`` on
the same tasks, model and input budget (the checkpoint's ``max_seq_len``), each from an
empty prediction cache:

- ``generate``: every configuration generated (the reference);
- ``teacher-forced, one after another``: every configuration scored in its own passes;
- ``teacher-forced, together``: the configurations of a run of tasks scored together,
  the decoder layers below the lowest adapted one run once for all.

Prints tasks per second of each (tasks x configurations / the run's wall seconds, as
``evaluate`` measures them, model load included) and the ratios against generation, and
checks that both teacher-forced runs give the same scores. A run directory whose results
were timed whole (every task predicted in it) is reused, so an interrupted benchmark
resumes without timing a warm cache.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="test_in_repo")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from evaluators.backends.base import GenerationConfig
    from evaluators.backends.hf import HFBackend
    from evaluators.harness import evaluate, read_checkpoint

    record = read_checkpoint(args.checkpoint)
    budget = int(record.get("options", {}).get("max_seq_len", 4096))
    top = int(record.get("options", {}).get("top_layers", 0))
    out = Path(args.out)
    gen = GenerationConfig(max_input_tokens=budget)
    together = HFBackend.score_configurations

    def one_by_one(self, configs, targets, desc="scoring", on_result=None):
        """Each configuration in passes of its own (what scoring them apart costs)."""
        return [together(self, [requests], targets, desc,
                         (lambda _, i, s, c=c: on_result(c, i, s)) if on_result else None)[0]
                for c, requests in enumerate(configs)]

    from evaluators.harness import Results
    from repopeftbench.io import cache_root
    shared = cache_root()          # converted models and code embeddings are not timed
    times, results = {}, {}
    for name, scoring, sequential in (("generate", "generate", False),
                                      ("teacher-forced, one after another", "teacher-forced", True),
                                      ("teacher-forced, together", "teacher-forced", False)):
        slug = name.replace(", ", "-").replace(" ", "-")
        fresh = out / "cache" / slug   # no predictions: every score is computed and timed
        fresh.mkdir(parents=True, exist_ok=True)
        for keep in ("models", "embeddings", "verified"):
            if (shared / keep).exists() and not (fresh / keep).exists():
                (fresh / keep).symlink_to((shared / keep).resolve())
        os.environ["REPOPEFTBENCH_CACHE"] = str(fresh)
        HFBackend.score_configurations = one_by_one if sequential else together
        done = out / slug / "results.json"
        if done.exists():                 # a run timed whole before (from an empty cache)
            prev = Results.load(done)
            if prev.n_predicted_now == prev.scores["n_tasks"]:
                results[name], times[name] = prev, prev.wall_time_s
                continue
        results[name] = evaluate(args.dataset, args.config, args.split, record["method"],
                                 record["model"]["name"], out / slug, limit=args.limit,
                                 device=args.device, generation=gen, progress=False,
                                 scoring=scoring, checkpoint=args.checkpoint)
        times[name] = results[name].wall_time_s      # evaluate's own clock, load included
    HFBackend.score_configurations = together
    first = results["generate"]
    modes = first.audit.get("modes") or [m for m in first.audit
                                         if isinstance(first.audit[m], dict) and "micro_ci" in first.audit[m]]
    n = first.scores["n_tasks"]
    print(f"{n} tasks of {args.config}/{args.split} ({first.scores['n_repos']} repositories), "
          f"{len(modes)} configurations ({', '.join(modes)}), {record['method']} with adapters on "
          f"{'the top ' + str(top) if top else 'every'} layer(s), inputs of {budget} tokens")
    ref = n * len(modes) / times["generate"]
    for name, seconds in times.items():
        rate = n * len(modes) / seconds
        print(f"  {name:34s} {seconds:8.1f} s  {rate:6.3f} task-configurations/s  "
              f"{rate / ref:5.2f}x generation")
    a, b = (results[k].audit for k in ("teacher-forced, one after another", "teacher-forced, together"))
    same = all(abs(a[m]["metrics"][k]["micro"] - b[m]["metrics"][k]["micro"]) < 1e-3
               for m in modes for k in ("tf_em", "tf_logprob", "tf_token_acc"))
    print(f"teacher-forced scores equal together and one after another: {same}")
    print(json.dumps({"times_s": times, "n_tasks": n, "modes": modes, "same": same}))


if __name__ == "__main__":
    main()
