#!/usr/bin/env bash
# Code2LoRA on the benchmark built by run_baselines.sh, on the same CPU budget (issue 9).
#
#   benchmarks/run_code2lora.sh WORK_DIR [LIMIT] [MODEL]
#
# Trains code2lora-static (static track; plain, then with the contrastive term) and
# code2lora-evo (evolution track), 60 optimizer steps each like shared-lora; evaluates them
# with the audit (own / mean / shuffled adapter, cosines) on LIMIT tasks (default 100) of
# test_in_repo and test_cross_repo; Static and the static-trained baselines are also
# evaluated on the evolution splits beside Evo. Paired comparisons against pretrained and
# shared-lora (their runs come from the prediction cache when run_baselines.sh made them).
# Everything is cached: rerunning resumes. Runs go to WORK_DIR/runs-c2l/TRACK/SPLIT/NAME.
set -euo pipefail
W=$1; LIMIT=${2:-100}; MODEL=${3:-smollm2}
# The encoder's CPU budget: at most 4 chunks of 256 tokens per file (5,611 chunks for the 30
# repositories' context instead of 18,838) and 8 files per diff; MiniLM costs about 0.1 s
# per chunk on this CPU.
BUDGET=(--option max_seq_len=512 --option batch_size=4 --option max_train_tasks_per_repo=40
        --option save_steps=10 --option max_steps=60 --option max_chunks=4
        --option diff_sections=8)
train() {  # name, method, track, extra options...
    local name=$1 m=$2 track=$3; shift 3
    [ -f "$W/ckpt/$name/method.json" ] || { /usr/bin/time -v repopeftbench train --method "$m" \
        --dataset "$W/bench" --config "$track" --model "$MODEL" --out "$W/ckpt/$name" \
        --no-progress "${BUDGET[@]}" "$@" 2> "$W/train-$name.log" || { tail -20 "$W/train-$name.log"; exit 1; }; }
}
run() {  # name, method, track, split
    local name=$1 m=$2 track=$3 split=$4
    local ckpt=(); [ -f "$W/ckpt/$name/method.json" ] && ckpt=(--checkpoint "$W/ckpt/$name")
    repopeftbench evaluate --method "$m" "${ckpt[@]}" --dataset "$W/bench" --config "$track" \
        --split "$split" --model "$MODEL" --limit "$LIMIT" --out "$W/runs-c2l/$track/$split/$name" \
        --no-progress > "$W/runs-c2l-$track-$split-$name.log"
    grep -A12 "^Audit" "$W/runs-c2l-$track-$split-$name.log" || true
}
compare() {  # track split a b
    echo "$1/$2: $4 - $3"
    repopeftbench compare "$W/runs-c2l/$1/$2/$3" "$W/runs-c2l/$1/$2/$4" --dataset "$W/bench" | tail -1
}

train code2lora-static code2lora-static static
for split in test_in_repo test_cross_repo; do
    run code2lora-static code2lora-static static "$split"
    for b in pretrained shared-lora; do
        run "$b" "$b" static "$split"
        compare static "$split" "$b" code2lora-static
    done
done

python "$(dirname "$0")/bench_code2lora_specialisation.py" --checkpoint "$W/ckpt/code2lora-static" \
    --dataset "$W/bench" --split validation_in_repo --limit 200 | tail -5
[ "${STOP_AFTER_STATIC:-0}" = 1 ] && exit 0

train code2lora-static-contrastive code2lora-static static --option contrastive=0.5
run code2lora-static-contrastive code2lora-static static test_in_repo
compare static test_in_repo code2lora-static code2lora-static-contrastive
python "$(dirname "$0")/bench_code2lora_specialisation.py" --checkpoint \
    "$W/ckpt/code2lora-static-contrastive" --dataset "$W/bench" --split validation_in_repo \
    --limit 200 | tail -5

train code2lora-evo code2lora-evo evolution
for split in test_in_repo test_cross_repo; do
    run code2lora-evo code2lora-evo evolution "$split"
    for b in pretrained shared-lora code2lora-static; do
        run "$b" "$b" evolution "$split"
        compare evolution "$split" "$b" code2lora-evo
    done
done
repopeftbench leaderboard --runs "$W/runs-c2l" --out "$W/leaderboard-code2lora"
