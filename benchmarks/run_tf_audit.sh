#!/usr/bin/env bash
# The Code2LoRA-Static audit on every static test_in_repo task, teacher-forced (issue 18):
# own adapter, leave-one-out mean, shuffled and none scored together, with the fixed
# training (shared prompt encoding, one input budget, target-only LM head) and adapters
# on the top 8 layers (lower layers cached in training, shared in scoring).
#   bash benchmarks/run_tf_audit.sh BENCH OUT [MODEL]
# Then the cost of the audit on a subset: generated against teacher-forced, together
# against one after another (benchmarks/bench_tf_audit.py).
set -euo pipefail
BENCH=$1; OUT=$2; MODEL=${3:-smollm2}
INPUT=${INPUT:-256}; STEPS=${STEPS:-200}; TOP=${TOP:-8}; TIMING_LIMIT=${TIMING_LIMIT:-40}
# MiniLM reads the first 256-token chunk of each context file (the CPU budget: about 0.1 s
# a chunk); 40 training tasks per repository at most, batch 4.
[ -f "$OUT/ckpt/method.json" ] || repopeftbench train --method code2lora-static --dataset "$BENCH" \
    --config static --model "$MODEL" --out "$OUT/ckpt" --no-progress \
    --option max_seq_len="$INPUT" --option top_layers="$TOP" --option batch_size=4 \
    --option max_train_tasks_per_repo=40 --option max_steps="$STEPS" --option save_steps=25 \
    --option max_chunks=1
python "$(dirname "$0")/bench_code2lora_specialisation.py" --checkpoint "$OUT/ckpt" \
    --dataset "$BENCH" --split test_in_repo --limit 0 --out "$OUT/audit"
python "$(dirname "$0")/bench_tf_audit.py" --checkpoint "$OUT/ckpt" --dataset "$BENCH" \
    --split test_in_repo --limit "$TIMING_LIMIT" --out "$OUT/timing"
