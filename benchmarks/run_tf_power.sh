#!/usr/bin/env bash
# Teacher-forced scoring against generation on a real benchmark, with two real methods:
# the base model and shared LoRA (trained at the same input budget it is scored at).
#   bash benchmarks/run_tf_power.sh BENCH OUT [MODEL] [INPUT]
# Prints the tf_em / strict_em agreement, tasks per second of both scorings and the
# paired per-task spreads of em, tf_em and tf_logprob (shared-lora - pretrained).
set -euo pipefail
BENCH=$1; OUT=$2; MODEL=${3:-smollm2}; INPUT=${INPUT:-256}
SPLITS=${SPLITS:-test_in_repo,test_cross_repo,validation_cross_repo}
[ -f "$OUT/ckpt/method.json" ] || repopeftbench train --method shared-lora --dataset "$BENCH" \
    --config static --model "$MODEL" --out "$OUT/ckpt" --no-progress \
    --option max_seq_len="$INPUT" --option batch_size=4 --option max_train_tasks_per_repo=40 \
    --option max_steps=40 --option save_steps=10
python "$(dirname "$0")/bench_teacher_forced.py" --dataset "$BENCH" --splits "$SPLITS" \
    --model "$MODEL" --max-input-tokens "$INPUT" --out "$OUT/runs" \
    --method pretrained --method-b shared-lora --checkpoint-b "$OUT/ckpt"
