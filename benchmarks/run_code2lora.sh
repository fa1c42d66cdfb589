#!/usr/bin/env bash
# Code2LoRA on the benchmark built by run_baselines.sh, on the same CPU budget (issue 9).
#
#   benchmarks/run_code2lora.sh WORK_DIR [LIMIT] [MODEL]
#
# Trains code2lora-static (static track, 40 optimizer steps like shared-lora) and
# code2lora-evo and shared-lora (evolution track, 40 steps each), and evaluates them with the audit (own / mean / shuffled
# adapter, cosines) on LIMIT tasks (default 100) of each static test split and LIMIT_EVO of
# each evolution test split. Static is compared with the runs of run_baselines.sh
# (pretrained, shared-lora; it waits for them, so both scripts can run side by side with
# OMP_NUM_THREADS=1 each); on the evolution splits Evo is compared with pretrained,
# shared-lora and Static. Last, the contrastive variant (SKIP_CONTRASTIVE=1 skips it).
# Everything is cached: rerunning resumes. Runs go to WORK_DIR/runs-c2l/TRACK/SPLIT/NAME.
# Afterwards: python benchmarks/report_runs.py --dataset W/bench --runs W/runs-c2l/evolution
#   --checkpoints W/ckpt
set -euo pipefail
W=$1; LIMIT=${2:-100}; MODEL=${3:-smollm2}
# Evolution prompts are whole files (median about 3,800 tokens on test_in_repo): on the CPU
# every method on the evolution splits is scored on LIMIT_EVO tasks with inputs
# left-truncated to EVO_INPUT tokens (the same for every method compared).
LIMIT_EVO=${LIMIT_EVO:-40}; EVO_INPUT=${EVO_INPUT:-1024}
# The encoder's CPU budget: at most 4 chunks of 256 tokens per file (5,611 chunks for the 30
# repositories' context instead of 18,838); Evo encodes at most 4 files per diff, one
# 128-token chunk each. MiniLM costs about 0.1 s per 256-token chunk on one core.
# Trained and scored at one budget per track (INPUT static, EVO_INPUT evolution), as
# run_baselines.sh does: the harness refuses a trained method scored at another budget.
INPUT=${INPUT:-256}
COMMON=(--option batch_size=4 --option max_train_tasks_per_repo=40
        --option save_steps=10 --option max_steps=40)
STATIC=("${COMMON[@]}" --option max_seq_len=$INPUT --option max_chunks=4)
EVO=("${COMMON[@]}" --option max_seq_len=$EVO_INPUT --option max_chunks=1 --option chunk_tokens=128
     --option diff_sections=4)
train() {  # name, method, track, extra options...
    local name=$1 m=$2 track=$3; shift 3
    [ -f "$W/ckpt/$name/method.json" ] || { /usr/bin/time -v repopeftbench train --method "$m" \
        --dataset "$W/bench" --config "$track" --model "$MODEL" --out "$W/ckpt/$name" \
        --no-progress "$@" 2> "$W/train-$name.log" || { tail -20 "$W/train-$name.log"; exit 1; }; }
}
wait_for() {  # a file that run_baselines.sh writes
    until [ -f "$1" ]; do sleep 30; done
}
run() {  # name, method, track, split, extra evaluate options...
    local name=$1 m=$2 track=$3 split=$4; shift 4
    local ckpt=(); [ -f "$W/ckpt/$name/method.json" ] && ckpt=(--checkpoint "$W/ckpt/$name")
    local lim=$LIMIT budget=$INPUT
    [ "$track" = evolution ] && lim=$LIMIT_EVO && budget=$EVO_INPUT
    set -- "$@" --max-input-tokens "$budget"
    local out="$W/runs-c2l/$track/$split/$name"
    [ -f "$out/results.json" ] || repopeftbench evaluate --method "$m" "${ckpt[@]}" \
        --dataset "$W/bench" --config "$track" --split "$split" --model "$MODEL" --limit "$lim" \
        --out "$out" --no-progress "$@" > "$W/runs-c2l-$track-$split-$name.log"
    echo "$track/$split $name: $(grep -m1 '^| em ' "$W/runs-c2l-$track-$split-$name.log")"
    grep -A8 "^Audit" "$W/runs-c2l-$track-$split-$name.log" || true
}
compare() {  # run_a run_b
    echo "$(basename "$(dirname "$2")")/$(basename "$2") - $(basename "$1"):"
    repopeftbench compare "$1" "$2" --dataset "$W/bench" | tail -1
}
special() {  # checkpoint name (SKIP_SPECIAL=1 skips it: 100 tasks x 4 adapters take a while)
    [ "${SKIP_SPECIAL:-0}" = 1 ] && return 0
    python "$(dirname "$0")/bench_code2lora_specialisation.py" --checkpoint "$W/ckpt/$1" \
        --dataset "$W/bench" --split validation_in_repo --limit 100 | tail -6
}

# Static, on the static test splits, against the baselines' runs of run_baselines.sh.
train code2lora-static code2lora-static static "${STATIC[@]}"
for split in test_in_repo test_cross_repo; do
    run code2lora-static code2lora-static static "$split"
    for b in pretrained shared-lora; do
        wait_for "$W/runs/$split/$b/results.json"
        compare "$W/runs/$split/$b" "$W/runs-c2l/static/$split/code2lora-static"
    done
done
special code2lora-static

# Evo, on the evolution test splits, against shared-lora and pretrained. shared-lora is
# trained again on the evolution track's train tasks (same budget as Evo: 40 steps, the
# same sequence length). The Static checkpoint is not scored here: it learned at INPUT
# tokens and the evolution runs use EVO_INPUT.
train code2lora-evo code2lora-evo evolution "${EVO[@]}"
train shared-lora-evo shared-lora evolution "${COMMON[@]}" --option max_seq_len=$EVO_INPUT
for split in test_in_repo test_cross_repo; do
    run code2lora-evo code2lora-evo evolution "$split"
    run pretrained pretrained evolution "$split"
    run shared-lora-evo shared-lora evolution "$split"
    for b in pretrained shared-lora-evo; do
        compare "$W/runs-c2l/evolution/$split/$b" "$W/runs-c2l/evolution/$split/code2lora-evo"
    done
done

# One way to fight collapse: the contrastive term (own adapter must fit better than another's).
[ "${SKIP_CONTRASTIVE:-0}" = 1 ] && exit 0
train code2lora-static-contrastive code2lora-static static "${STATIC[@]}" --option contrastive=0.5
run code2lora-static-contrastive code2lora-static static test_in_repo
compare "$W/runs-c2l/static/test_in_repo/code2lora-static" \
    "$W/runs-c2l/static/test_in_repo/code2lora-static-contrastive"
special code2lora-static-contrastive
repopeftbench leaderboard --runs "$W/runs-c2l" --out "$W/leaderboard-code2lora"
