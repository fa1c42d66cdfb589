"""Sharded evaluation on one machine: N shards side by side against one process.

    python benchmarks/bench_shards.py --dataset BENCH [--split test_in_repo] \\
        [--method pretrained] [--model smollm2] [--limit 60] [--max-input-tokens 256] \\
        [--shards 2]

The reference, measured in the same run: one ``repopeftbench evaluate`` process with every
usable core. Then ``--shards`` processes (``--shard I/N``) started together, each with
cores/N threads, and ``repopeftbench merge`` of their run directories. Each arm starts from
an empty prediction cache (the converted model is shared), so both predict every task.
Prints both wall times, their ratio, and whether the merged run's predictions and scores
equal the unsharded run's. The load average before the run is printed: anything else
running on the machine slows the arms unequally.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cache_root() -> Path:
    from repopeftbench.io import cache_root
    return cache_root()


def _fresh_cache(parent: Path, name: str) -> dict:
    """An empty cache directory whose converted models are the real cache's."""
    root = parent / name
    root.mkdir()
    models = _cache_root() / "models"
    if models.exists():
        (root / "models").symlink_to(models, target_is_directory=True)
    return {**os.environ, "REPOPEFTBENCH_CACHE": str(root)}


def _predictions(run: Path) -> dict:
    lines = (run / "predictions.jsonl").read_text().splitlines()[1:]
    return {r["task_id"]: r["raw"] for r in map(json.loads, lines)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--split", default="test_in_repo")
    ap.add_argument("--method", default="pretrained")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--max-input-tokens", type=int, default=256)
    ap.add_argument("--shards", type=int, default=2)
    args = ap.parse_args()

    from evaluators.models import usable_cores
    cores = usable_cores()
    per_shard = max(1, cores // args.shards)
    cmd = [sys.executable, "-m", "repopeftbench.cli", "evaluate", "--dataset", args.dataset,
           "--config", args.config, "--split", args.split, "--method", args.method,
           "--model", args.model, "--limit", str(args.limit),
           "--max-input-tokens", str(args.max_input_tokens), "--no-progress"]
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min); {cores} usable cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = _fresh_cache(tmp, "cache-one")
        t0 = time.perf_counter()
        subprocess.run(cmd + ["--out", str(tmp / "one")], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        one = time.perf_counter() - t0

        env = {**_fresh_cache(tmp, "cache-shards"), "OMP_NUM_THREADS": str(per_shard)}
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd + ["--out", str(tmp / f"shard{i}"), "--shard",
                                         f"{i}/{args.shards}"], env=env,
                                  stdout=subprocess.DEVNULL)
                 for i in range(args.shards)]
        if any(p.wait() for p in procs):
            raise SystemExit("a shard failed")
        sharded = time.perf_counter() - t0
        subprocess.run([sys.executable, "-m", "repopeftbench.cli", "merge",
                        *[str(tmp / f"shard{i}") for i in range(args.shards)],
                        "--out", str(tmp / "merged")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        same = _predictions(tmp / "one") == _predictions(tmp / "merged")
        scores = [json.loads((tmp / r / "results.json").read_text())["scores"]
                  for r in ("one", "merged")]
    print(f"{args.method} on {args.config}/{args.split}, {args.limit} tasks, {args.model}, inputs "
          f"cut to {args.max_input_tokens}: 1 process x {cores} threads {one:.1f} s; "
          f"{args.shards} shards x {per_shard} threads side by side {sharded:.1f} s: "
          f"{one / sharded:.2f}x the throughput; merged predictions identical: {same}; "
          f"scores identical: {scores[0] == scores[1]}")


if __name__ == "__main__":
    main()
