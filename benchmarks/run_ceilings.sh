#!/usr/bin/env bash
# The ceiling tests of the experiment (issue 19): can any adapter use what a repository's
# own training tasks carry? Every row on the same static test_in_repo tasks, teacher-forced,
# one backbone, prompt format, input budget and set of training tasks:
#   1. per-repo-lora with a real budget (EPOCHS over every training task of each repository)
#      against shared-lora (the same tasks, the same number of epochs);
#   2. shared LoRA + a free learned vector per repository (code2lora-static encoder=table,
#      head=residual: shared LoRA plus a repository-mixed residual that starts at zero);
#   3. no training: repo-examples (k solved training tasks of the repository before the
#      prefix; its audit: another repository's).
# Each is compared with shared-lora, on all tasks and on each knowledge-source label.
#   bash benchmarks/run_ceilings.sh BENCH OUT [MODEL]
set -euo pipefail
BENCH=$1; OUT=$2; MODEL=${3:-qwen2.5-coder-0.5b}
INPUT=${INPUT:-512}; TOP=${TOP:-8}; EPOCHS=${EPOCHS:-2}; SPLIT=${SPLIT:-test_in_repo}
COMMON=(--option max_seq_len="$INPUT" --option top_layers="$TOP" --option batch_size=4
        --option max_train_tasks_per_repo=0 --option epochs="$EPOCHS" --option save_steps=200)
train() {  # name method options...
    local name=$1 m=$2; shift 2
    [ -f "$OUT/ckpt/$name/method.json" ] || repopeftbench train --method "$m" --dataset "$BENCH" \
        --config static --model "$MODEL" --out "$OUT/ckpt/$name" --no-progress "${COMMON[@]}" "$@"
}
score() {  # name method [checkpoint]
    repopeftbench evaluate --dataset "$BENCH" --config static --split "$SPLIT" --method "$2" \
        --model "$MODEL" --max-input-tokens "$INPUT" --scoring teacher-forced --no-progress \
        --out "$OUT/runs/$1" ${3:+--checkpoint "$3"} > "$OUT/runs/$1.txt"
}
mkdir -p "$OUT/runs"
train shared-lora shared-lora
train per-repo-lora per-repo-lora
train repo-vector code2lora-static --option encoder=table --option head=residual \
    --option learning_rate=1e-4 --option stabilise=true
score pretrained pretrained
score shared-lora shared-lora "$OUT/ckpt/shared-lora"
score per-repo-lora per-repo-lora "$OUT/ckpt/per-repo-lora"
score repo-vector code2lora-static "$OUT/ckpt/repo-vector"
score repo-examples repo-examples
for run in pretrained per-repo-lora repo-vector repo-examples; do
    for label in "" prefix repository none; do
        for metric in tf_em tf_logprob; do
            echo "== $run - shared-lora, $metric${label:+, knowledge_source=$label}"
            repopeftbench compare "$OUT/runs/shared-lora" "$OUT/runs/$run" --dataset "$BENCH" \
                --metric "$metric" ${label:+--knowledge-source "$label"} | tail -2
        done
    done
done
