#!/usr/bin/env bash
# The baselines of SPEC section 9 on a real benchmark, on a CPU budget (issue 8).
#
#   benchmarks/run_baselines.sh REPO_LIST WORK_DIR [LIMIT] [MODEL]
#
# Builds both tracks of REPO_LIST (cutoff 2025-04-01), trains every trained baseline once
# on the static training split, evaluates every method on a fixed sample of LIMIT tasks
# (default 150) of test_in_repo and test_cross_repo, and compares each with pretrained
# (paired bootstrap over repositories). Everything is cached: rerunning resumes.
set -euo pipefail
LIST=$1; W=$2; LIMIT=${3:-150}; MODEL=${4:-smollm2}
TRACK=static
repopeftbench build --repos "$LIST" --out "$W/bench" --tracks static,evolution --workers 2 \
    --cutoff 2025-04-01 --no-progress
repopeftbench stats "$W/bench" > "$W/stats.md"

BUDGET=(--option max_seq_len=512 --option batch_size=4 --option max_train_tasks_per_repo=40
        --option save_steps=10)   # checkpoints: an interrupted training resumes
train() {  # method, extra options...
    local m=$1; shift
    [ -f "$W/ckpt/$m/method.json" ] || { /usr/bin/time -v repopeftbench train --method "$m" \
        --dataset "$W/bench" --config $TRACK --model "$MODEL" --out "$W/ckpt/$m" --no-progress \
        "${BUDGET[@]}" "$@" 2> "$W/train-$m.log" || { cat "$W/train-$m.log"; exit 1; }; }
}
train shared-lora --option max_steps=60
train per-repo-lora --option max_steps=8
train fft --option max_steps=60
train fft-rag --option max_steps=60

for split in test_in_repo test_cross_repo; do
    for m in pretrained rag-bm25 rag-dense shared-lora per-repo-lora fft fft-rag; do
        [ "$m" = per-repo-lora ] && [ "$split" != test_in_repo ] && continue
        ckpt=(); [ -d "$W/ckpt/$m" ] && ckpt=(--checkpoint "$W/ckpt/$m")
        repopeftbench evaluate --method "$m" "${ckpt[@]}" --dataset "$W/bench" --config $TRACK \
            --split "$split" --model "$MODEL" --limit "$LIMIT" --out "$W/runs/$split/$m" \
            --no-progress > "$W/runs-$split-$m.log"
        [ "$m" = pretrained ] || repopeftbench compare "$W/runs/$split/pretrained" \
            "$W/runs/$split/$m" --dataset "$W/bench" | tail -1
    done
done
repopeftbench leaderboard --runs "$W/runs" --out "$W/leaderboard"
