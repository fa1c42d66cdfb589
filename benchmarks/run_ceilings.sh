#!/usr/bin/env bash
# The ceiling tests of the experiment (issue 19): can any adapter use what a repository's
# own training tasks carry? Every row on the same static test_in_repo tasks, teacher-forced,
# one backbone, prompt format, input budget and set of training tasks (TASKS per
# repository, EPOCHS epochs, batch 4, learning rate 2e-4, adapters on the top TOP layers):
#   1. per-repo-lora: one LoRA per repository, EPOCHS epochs over its own training tasks,
#      against shared-lora (one LoRA, EPOCHS epochs over all of them);
#   2. repo-vector: shared LoRA + a free learned vector per repository (code2lora-static
#      encoder=table, head=residual: shared LoRA plus a repository-mixed residual that
#      starts at zero; its audit: own, leave-one-out mean, shuffled);
#   3. repo-examples, no training: k solved training tasks of the repository before the
#      prefix; its audit: another repository's (prompts differ, so scored on its own, on
#      EXAMPLES_LIMIT tasks).
#   4. (STAGES=fromshared) per-repo-from-shared: per-repo-lora whose adapters start from
#      the shared-lora adapter (init_adapter=), then EPOCHS epochs over the repository's
#      own tasks; its audit: another repository's adapter made the same way, so own - other
#      is what the repository's own tasks add at an equal budget, and the leave-one-out
#      mean of the other repositories' adapters (own - mean, Code2LoRA's audit); exact, of
#      rank (repositories - 1) x 16, or MEAN_RANK=64: from the mean truncated to rank 64.
# Then (STAGES=code2lora, card, hidden, text2lora) Code2LoRA-Static with the residual head and the
# stabilisers, MiniLM over the context files or over the API card (inputs=card), the card
# embedded with the base model's hidden states (STAGES=hidden, encoder=base), the residual
# trained on top of the frozen shared-lora adapter (STAGES=warm, init_shared=), the same with
# a basis of BASIS=32 adapters, more than the training repositories (STAGES=wide), the warm
# residual fed a free learned vector per repository instead (STAGES=vector: is the
# repository's code, or the head, what keeps own - mean at 0?), and
# Text-to-LoRA (the same vector and budget, the per-layer head), the same budget; and
# (STAGES=recon) the wide warm residual trained instead to reproduce per-repo-from-shared's
# adapters (objective=reconstruct, RECON_STEPS steps at RECON_LR; no forward pass of the model).
# TRACK=evolution STAGES=evo: Code2LoRA-Evo (an adapter per commit from the GRU state over
# the repository's diffs, DIFF_SECTIONS files of each) as the same stabilised residual on
# the evolution track's own shared-lora, with pretrained and shared-lora on the same tasks.
# REPOS=N trains and scores the split's first N repositories only (by repo-id hash, nested):
# a per-repository ceiling at a larger TASKS in a fraction of the time. To start it from an
# existing shared-lora, link that checkpoint to OUT/ckpt/shared-lora first.
# TRAIN_ONLY=1 trains without scoring (then STAGES=score scores them all in one pass).
# STAGES=score scores pretrained and every checkpoint of OUT/ckpt on SPLIT (the in-repo-only
# ones skipped on other splits) with SCORING, into RUNS; AUDIT=false leaves the audits out
# (generation scores each audit mode in a pass of its own); NO_AUDIT="NAME ..." leaves out
# those checkpoints' audits only (a per-layer head's leave-one-out means are of full rank,
# about 650 MB each by their shapes on Qwen2.5-Coder-0.5B's top 8 layers, and slow every
# row they serve).
# The trained methods are scored in one pass (evaluate-together: the layers below the
# adapters once for all), then each is compared with shared-lora, on all tasks and on each
# knowledge-source label.
#   bash benchmarks/run_ceilings.sh BENCH OUT [MODEL]
set -euo pipefail
BENCH=$1; OUT=$2; MODEL=${3:-qwen2.5-coder-0.5b}
TRACK=${TRACK:-static}   # evolution: the stages on the evolution track (use another OUT)
INPUT=${INPUT:-512}; TOP=${TOP:-8}; EPOCHS=${EPOCHS:-2}; SPLIT=${SPLIT:-test_in_repo}
TASKS=${TASKS:-0}; EXAMPLES_LIMIT=${EXAMPLES_LIMIT:-400}; STAGES=${STAGES:-ceilings,code2lora}
LIMIT=${LIMIT:-0}   # tasks scored (a fixed hash sample); 0: every task of the split
REPOS=${REPOS:-0}   # train and score the split's first REPOS repositories only (by repo-id hash); 0: all
SCORING=${SCORING:-teacher-forced}   # or generate (greedy decoding, the protocol's em)
RUNS=${RUNS:-$OUT/runs}              # where the run directories go (one per split and scoring)
AUDIT=${AUDIT:-true}
NO_AUDIT=${NO_AUDIT:-}               # checkpoint names scored without their audit (STAGES=score)
TRAIN_ONLY=${TRAIN_ONLY:-}           # 1: train each stage's checkpoints, score nothing (STAGES=score later)
MEAN_RANK=${MEAN_RANK:-0}            # per-repo-from-shared's audit mean at this rank (0: exact)
MEAN=$([ "$MEAN_RANK" != 0 ] && echo ",mean_rank=$MEAN_RANK" || true)
COMMON=(--option max_seq_len="$INPUT" --option top_layers="$TOP" --option batch_size=4
        --option max_train_tasks_per_repo="$TASKS" --option epochs="$EPOCHS" --option save_steps=100
        --option max_train_repos="$REPOS")
RESIDUAL=(--option head=residual --option stabilise=true --option learning_rate=2e-4)
train() {  # name method options...
    local name=$1 m=$2; shift 2
    [ -f "$OUT/ckpt/$name/method.json" ] || repopeftbench train --method "$m" --dataset "$BENCH" \
        --config "$TRACK" --model "$MODEL" --out "$OUT/ckpt/$name" --no-progress "${COMMON[@]}" "$@" \
        > "$OUT/train-$name.log" 2>&1
}
run() { echo "$RUNS/$1=$2${3:+,checkpoint=$OUT/ckpt/$3}"; }   # an evaluate-together run
together() {  # run specs...
    [ -z "$TRAIN_ONLY" ] || return 0
    local args=(); for r in "$@"; do args+=(--run "$r"); done
    repopeftbench evaluate-together --dataset "$BENCH" --config "$TRACK" --split "$SPLIT" \
        --model "$MODEL" --max-input-tokens "$INPUT" --scoring "$SCORING" --no-progress \
        $([ "$LIMIT" != 0 ] && echo --limit "$LIMIT") $([ "$REPOS" != 0 ] && echo --repos "$REPOS") \
        "${args[@]}"
}
mkdir -p "$RUNS"
if [[ $STAGES == *ceilings* ]]; then
    train shared-lora shared-lora
    train per-repo-lora per-repo-lora
    train repo-vector code2lora-static --option encoder=table "${RESIDUAL[@]}"
    together "$(run pretrained pretrained)" "$(run shared-lora shared-lora shared-lora)" \
        "$(run per-repo-lora per-repo-lora per-repo-lora)" \
        "$(run repo-vector code2lora-static repo-vector)" > "$RUNS/ceilings.txt"
    [ -n "$TRAIN_ONLY" ] || repopeftbench evaluate --dataset "$BENCH" --config static --split "$SPLIT" --method repo-examples \
        --model "$MODEL" --max-input-tokens "$INPUT" --scoring teacher-forced --no-progress \
        --limit "$EXAMPLES_LIMIT" $([ "$REPOS" != 0 ] && echo --repos "$REPOS") \
        --out "$RUNS/repo-examples" > "$RUNS/repo-examples.txt"
fi
if [[ $STAGES == *fromshared* ]]; then
    train shared-lora shared-lora
    train per-repo-from-shared per-repo-lora --option init_adapter="$OUT/ckpt/shared-lora"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run per-repo-from-shared per-repo-lora per-repo-from-shared),audit=true$MEAN" \
        > "$RUNS/fromshared.txt"
fi
# Each stage below trains one method and scores it beside shared-lora (whose predictions
# are cached from the first stage, so later stages score the new method alone).
if [[ $STAGES == *code2lora* ]]; then   # residual head + stabilisers, MiniLM over the files
    train shared-lora shared-lora
    train c2l-residual code2lora-static --option max_chunks=1 "${RESIDUAL[@]}"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run c2l-residual code2lora-static c2l-residual)" > "$RUNS/code2lora.txt"
fi
if [[ $STAGES == *card* ]]; then        # the same, MiniLM over the repository's API card
    train shared-lora shared-lora
    train c2l-card code2lora-static --option inputs=card "${RESIDUAL[@]}"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run c2l-card code2lora-static c2l-card)" > "$RUNS/card.txt"
fi
if [[ $STAGES == *hidden* ]]; then      # the API card embedded with the base model's hidden states
    train shared-lora shared-lora
    train c2l-card-base code2lora-static --option inputs=card --option encoder=base "${RESIDUAL[@]}"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run c2l-card-base code2lora-static c2l-card-base)" > "$RUNS/hidden.txt"
fi
if [[ $STAGES == *warm* ]]; then        # the residual on top of the trained shared-lora, frozen
    train shared-lora shared-lora
    train c2l-warm code2lora-static --option max_chunks=1 "${RESIDUAL[@]}" \
        --option init_shared="$OUT/ckpt/shared-lora"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run c2l-warm code2lora-static c2l-warm)" > "$RUNS/warm.txt"
fi
if [[ $STAGES == *wide* ]]; then        # the warm residual, a basis of BASIS adapters (at least one
    BASIS=${BASIS:-32}                  # per training repository: the span is no bottleneck)
    train shared-lora shared-lora
    train "c2l-warm-b$BASIS" code2lora-static --option max_chunks=1 "${RESIDUAL[@]}" \
        --option init_shared="$OUT/ckpt/shared-lora" --option basis="$BASIS"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run "c2l-warm-b$BASIS" code2lora-static "c2l-warm-b$BASIS")" > "$RUNS/wide.txt"
fi
if [[ $STAGES == *vector* ]]; then      # the warm residual fed a free learned vector per repository
    train shared-lora shared-lora       # (encoder=table) instead of the code's embedding
    train repo-vector-warm code2lora-static --option encoder=table "${RESIDUAL[@]}" \
        --option init_shared="$OUT/ckpt/shared-lora"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run repo-vector-warm code2lora-static repo-vector-warm)" > "$RUNS/vector.txt"
fi
if [[ $STAGES == *recon* ]]; then       # the warm residual of BASIS adapters, trained to reproduce
    BASIS=${BASIS:-32}                  # per-repo-from-shared's adapters (objective=reconstruct)
    RECON_STEPS=${RECON_STEPS:-300}; RECON_LR=${RECON_LR:-1e-3}
    train shared-lora shared-lora
    train per-repo-from-shared per-repo-lora --option init_adapter="$OUT/ckpt/shared-lora"
    train "c2l-recon-b$BASIS" code2lora-static --option max_chunks=1 "${RESIDUAL[@]}" \
        --option init_shared="$OUT/ckpt/shared-lora" --option basis="$BASIS" \
        --option objective=reconstruct --option targets="$OUT/ckpt/per-repo-from-shared" \
        --option max_steps="$RECON_STEPS" --option learning_rate="$RECON_LR"
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run "c2l-recon-b$BASIS" code2lora-static "c2l-recon-b$BASIS")" > "$RUNS/recon.txt"
fi
if [[ $STAGES == *evo* ]]; then         # TRACK=evolution: Code2LoRA-Evo's stabilised residual on
    train shared-lora shared-lora       # this track's frozen shared-lora (diffs without git's
    train evo-warm code2lora-evo --option max_chunks=1 "${RESIDUAL[@]}" \
        --option init_shared="$OUT/ckpt/shared-lora" --option diff_sections="${DIFF_SECTIONS:-4}" \
        --option evo_layernorm=true --option evo_init_mlp=true    # headers; the published norms)
    together "$(run pretrained pretrained)" "$(run shared-lora shared-lora shared-lora)" \
        "$(run evo-warm code2lora-evo evo-warm)" > "$RUNS/evo.txt"
fi
if [[ $STAGES == *text2lora* ]]; then   # Code2LoRA-Static's vector and budget, per-layer head
    train shared-lora shared-lora
    train text2lora text2lora --option max_chunks=1 --option stabilise=true --option learning_rate=2e-4
    together "$(run shared-lora shared-lora shared-lora)" \
        "$(run text2lora text2lora text2lora)" > "$RUNS/text2lora.txt"
fi
if [[ $STAGES == *score* ]]; then       # pretrained and every trained checkpoint on SPLIT, SCORING
    specs=("$(run pretrained pretrained)")
    for ck in "$OUT"/ckpt/*/method.json; do
        name=$(basename "$(dirname "$ck")")
        method=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["method"])' "$ck")
        # a vector per training repository (encoder=table) or an adapter per one: in-repo only
        if [[ $SPLIT != *_in_repo ]] && { [[ $method == per-repo-lora ]] ||
                grep -q '"encoder": "table"' "$ck"; }; then continue; fi
        audit=""; [[ $method == shared-lora ]] || audit=",audit=$AUDIT"
        [[ $method != per-repo-lora || $AUDIT != true ]] || audit+="$MEAN"
        [[ " $NO_AUDIT " != *" $name "* ]] || audit=",audit=false"
        specs+=("$(run "$name" "$method" "$name")$audit")
    done
    together "${specs[@]}" > "$RUNS/score.txt"
fi
for run in pretrained per-repo-lora repo-vector per-repo-from-shared c2l-residual c2l-card c2l-card-base c2l-warm c2l-warm-b32 c2l-recon-b32 text2lora evo-warm; do
    [ -f "$RUNS/$run/results.json" ] || continue
    for label in "" prefix repository none; do
        for metric in $([ "$SCORING" = generate ] && echo em || echo tf_em tf_logprob); do
            echo "== $run - shared-lora, $metric${label:+, knowledge_source=$label}"
            repopeftbench compare "$RUNS/shared-lora" "$RUNS/$run" --dataset "$BENCH" \
                --metric "$metric" ${label:+--knowledge-source "$label"} | tail -2
        done
    done
done > "$RUNS/compare.txt"
