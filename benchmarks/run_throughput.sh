#!/usr/bin/env bash
# Evaluation throughput of the harness against the naive per-task generate loop on every
# test split of a built benchmark (issue 11), on an otherwise idle machine:
#
#   benchmarks/run_throughput.sh BENCH_DIR [N] [EVO_INPUT] [N_EVO]
#
# N consecutive tasks of each static split (default 24; --group-sample, the prefix sharing
# of a whole-split evaluation), N_EVO of each evolution split (default 12). Evolution prompts are whole files: at the protocol's 4,096
# tokens one task costs about 25 s on two CPU cores, so the evolution splits are measured
# with inputs cut to EVO_INPUT tokens (default 1024, the budget of the README's evolution
# results; pass 4096 for the protocol's). Each block ends with "speedup X bound Y".
# REPEAT=N times each N times, alternating which goes first, and keeps the best.
set -euo pipefail
B=$1; N=${2:-24}; EVO_INPUT=${3:-1024}; N_EVO=${4:-12}; REPEAT=${REPEAT:-1}
here=$(dirname "$0")
for split in test_in_repo test_cross_repo; do
    echo "== static $split, $N consecutive tasks"
    python "$here/bench_eval_throughput.py" --dataset "$B" --config static --split "$split" \
        --group-sample "$N" --repeat "$REPEAT"
done
for split in test_in_repo test_cross_repo; do
    echo "== evolution $split, $N_EVO consecutive tasks, inputs cut to $EVO_INPUT tokens"
    python "$here/bench_eval_throughput.py" --dataset "$B" --config evolution --split "$split" \
        --group-sample "$N_EVO" --max-input-tokens "$EVO_INPUT" --repeat "$REPEAT"
done
