#!/usr/bin/env bash
# The baselines of SPEC section 9 on a real benchmark, on a CPU budget (issue 8).
#
#   benchmarks/run_baselines.sh REPO_LIST WORK_DIR [LIMIT] [MODEL]
#
# Builds both tracks of REPO_LIST (cutoff 2025-04-01), then, method by method (cheapest
# first, so an interrupted run has the most results), trains it once on the static training
# split and evaluates it on a fixed sample of LIMIT tasks (default 100) of test_in_repo and
# test_cross_repo. Everything is cached: rerunning resumes (trainings checkpoint every 10
# steps). It can run beside run_code2lora.sh (each with OMP_NUM_THREADS=1 on 2 cores);
# run_code2lora.sh waits for the shared-lora checkpoint this script writes.
# Afterwards: python benchmarks/report_runs.py --dataset W/bench --runs W/runs --checkpoints W/ckpt
set -euo pipefail
LIST=$1; W=$2; LIMIT=${3:-100}; MODEL=${4:-smollm2}
# Prompts with retrieved chunks are about six times longer: on the CPU the methods with
# retrieval are scored on the first LIMIT_RAG tasks of the same nested, hash-ordered
# sample (compare pairs runs on their common tasks).
LIMIT_RAG=${LIMIT_RAG:-$((LIMIT / 2))}
TRACK=static
[ -f "$W/bench/manifest.json" ] || repopeftbench build --repos "$LIST" --out "$W/bench" \
    --tracks static,evolution --workers 2 --cutoff 2025-04-01 --no-progress
repopeftbench stats "$W/bench" > "$W/stats.md"

# One input budget for every method compared: trained methods learn on sequences of INPUT
# tokens and every method is scored on inputs of INPUT tokens (the harness refuses a
# trained method scored at another budget than it learned at).
INPUT=${INPUT:-256}
BUDGET=(--option max_seq_len=$INPUT --option batch_size=4 --option max_train_tasks_per_repo=40
        --option save_steps=10)   # checkpoints: an interrupted training resumes
train() {  # method, extra options...
    local m=$1; shift
    [ -f "$W/ckpt/$m/method.json" ] || { /usr/bin/time -v repopeftbench train --method "$m" \
        --dataset "$W/bench" --config $TRACK --model "$MODEL" --out "$W/ckpt/$m" --no-progress \
        "${BUDGET[@]}" "$@" 2> "$W/train-$m.log" || { tail -20 "$W/train-$m.log"; exit 1; }; }
}
evaluate() {  # method
    local m=$1 split lim=$LIMIT
    case $m in rag-*|fft-rag) lim=$LIMIT_RAG ;; esac
    for split in test_in_repo test_cross_repo; do
        [ "$m" = per-repo-lora ] && [ "$split" != test_in_repo ] && continue
        local ckpt=(); [ -d "$W/ckpt/$m" ] && ckpt=(--checkpoint "$W/ckpt/$m")
        repopeftbench evaluate --method "$m" "${ckpt[@]}" --dataset "$W/bench" --config $TRACK \
            --split "$split" --model "$MODEL" --limit "$lim" --out "$W/runs/$split/$m" \
            --max-input-tokens "$INPUT" --no-progress > "$W/runs-$split-$m.log"
        echo "$split $m: $(grep -m1 '^| em ' "$W/runs-$split-$m.log")"
        [ "$m" = pretrained ] || repopeftbench compare "$W/runs/$split/pretrained" \
            "$W/runs/$split/$m" --dataset "$W/bench" | tail -1
    done
}
evaluate pretrained
train shared-lora --option max_steps=40;  evaluate shared-lora
evaluate rag-bm25
train fft --option max_steps=20;          evaluate fft
train per-repo-lora --option max_steps=2 --option batch_size=2; evaluate per-repo-lora
train fft-rag --option max_steps=10;      evaluate fft-rag
evaluate rag-dense
repopeftbench leaderboard --runs "$W/runs" --out "$W/leaderboard"
