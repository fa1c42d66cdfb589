#!/usr/bin/env bash
# Issue 20's comparison: what context before the prefix adds, with and without a trained
# adapter. On the same tasks (LIMIT of each split, a fixed hash sample), teacher-forced, one
# backbone and input budget (INPUT tokens, the context inside it):
#   pretrained, rag-bm25 (pretrained + context=bm25), drc (pretrained + context=drc),
#   card (pretrained + context=card: the repository's API card) and card-other (another
#   repository's card: what the repository's own names add beyond the format),
#   shared-lora, and shared-lora trained and scored with context=drc (the same training
#   tasks, TASKS per repository, EPOCHS epochs, adapters on the top TOP layers).
# Methods with the same prompts are scored in one pass (evaluate-together); then each is
# compared with the pretrained model and shared-lora+drc with shared-lora, on all tasks
# and per knowledge-source label; and DRC's coverage, added tokens and resolution time
# (bench_drc.py).
#   [INPUT=1024 TOP=8 EPOCHS=1 TASKS=24 LIMIT=200 SPLITS=... COVERAGE_SPLITS=...] \
#       bash benchmarks/run_context.sh BENCH OUT [MODEL]
set -euo pipefail
BENCH=$1; OUT=$2; MODEL=${3:-smollm2}; HERE=$(cd "$(dirname "$0")" && pwd)
INPUT=${INPUT:-1024}; TOP=${TOP:-8}; EPOCHS=${EPOCHS:-1}; TASKS=${TASKS:-24}; LIMIT=${LIMIT:-200}
SPLITS=${SPLITS:-test_in_repo,test_cross_repo}; COVERAGE_SPLITS=${COVERAGE_SPLITS:-$SPLITS}
COMMON=(--option max_seq_len="$INPUT" --option top_layers="$TOP" --option batch_size=4
        --option max_train_tasks_per_repo="$TASKS" --option epochs="$EPOCHS" --option save_steps=100)
mkdir -p "$OUT"
[ -s "$OUT/drc_coverage.txt" ] || python "$HERE/bench_drc.py" --dataset "$BENCH" --model "$MODEL" --splits "$COVERAGE_SPLITS" \
    --max-input-tokens "$INPUT" > "$OUT/drc_coverage.txt"
for name in shared-lora shared-lora-drc; do
    extra=(); [ "$name" = shared-lora-drc ] && extra=(--option context=drc)
    [ -f "$OUT/ckpt/$name/method.json" ] || repopeftbench train --method shared-lora \
        --dataset "$BENCH" --config static --model "$MODEL" --out "$OUT/ckpt/$name" --no-progress \
        "${COMMON[@]}" "${extra[@]}" > "$OUT/train-$name.log" 2>&1
done
for split in ${SPLITS//,/ }; do
    R=$OUT/runs/$split
    mkdir -p "$R"
    ev() { repopeftbench evaluate-together --dataset "$BENCH" --config static --split "$split" \
        --model "$MODEL" --max-input-tokens "$INPUT" --limit "$LIMIT" --no-progress "$@"; }
    ev --run "$R/pretrained=pretrained" \
       --run "$R/shared-lora=shared-lora,checkpoint=$OUT/ckpt/shared-lora" > "$R/plain.txt"
    ev --run "$R/drc=drc" \
       --run "$R/shared-lora-drc=shared-lora,checkpoint=$OUT/ckpt/shared-lora-drc" > "$R/drc.txt"
    ev --run "$R/rag-bm25=rag-bm25" > "$R/rag.txt"
    ev --run "$R/card=pretrained,context=card" \
       --run "$R/card-other=pretrained,context=card,context_source=other" > "$R/card.txt"
    python "$HERE/report_ceilings.py" --dataset "$BENCH" --runs "$R" --reference pretrained \
        > "$R/vs_pretrained.md"
    for pair in shared-lora:shared-lora-drc card-other:card; do
        for label in "" repository; do
            for metric in tf_em tf_logprob; do
                echo "== ${pair#*:} - ${pair%:*}, $metric${label:+, knowledge_source=$label}"
                repopeftbench compare "$R/${pair%:*}" "$R/${pair#*:}" --dataset "$BENCH" \
                    --metric "$metric" ${label:+--knowledge-source "$label"} | tail -2
            done
        done
    done > "$R/pairs.txt"
done
