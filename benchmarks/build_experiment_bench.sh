#!/usr/bin/env bash
# The real benchmark of the powered experiment (issue 19), from fetched mirrors.
#   bash benchmarks/build_experiment_bench.sh MIRRORS WORK
# MIRRORS holds OWNER+NAME/repo git directories (what the tool library's fetch brings);
# WORK receives the candidate build, the selected list and the benchmark (WORK/bench).
# 1. every candidate of benchmarks/repos_real.jsonl, both tracks, cutoff 2025-04-01, caps
#    of 10 tasks per test function, 100 per file, 300 per repository;
# 2. the repositories with at least 75 static tasks (60 training tasks in-repo), the list
#    benchmarks/repos_experiment.jsonl;
# 3. the benchmark of those (with SELECTED_ONLY=1, of benchmarks/repos_experiment.jsonl), 10% of repositories for cross-repo validation and 20% for the
#    cross-repo test (by a hash of the repository id).
set -euo pipefail
MIRRORS=$1; W=$2; HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$W"
local_list() {  # a list with the GitHub URLs replaced by the mirrors
    python - "$1" "$MIRRORS" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    row["url"] = f"{sys.argv[2]}/{row['repo_id'].replace('/', '+', 1)}/repo"
    print(json.dumps(row))
PY
}
CAPS=(--cap-per-function 10 --cap-per-file 100 --cap-per-repo 300 --cutoff 2025-04-01
      --tracks static,evolution --workers "${WORKERS:-2}" --work-dir "$W/work" --no-progress)
if [ -z "${SELECTED_ONLY:-}" ]; then
    local_list "$HERE/repos_real.jsonl" > "$W/candidates.jsonl"
    repopeftbench build --repos "$W/candidates.jsonl" --out "$W/candidates" "${CAPS[@]}" --cr-test-fraction 0.15
    python "$HERE/select_repos.py" --report "$W/candidates/build_report.json" \
        --repos "$HERE/repos_real.jsonl" > "$W/repos_experiment.jsonl"
    cmp -s "$W/repos_experiment.jsonl" "$HERE/repos_experiment.jsonl" ||
        echo "note: the selection differs from benchmarks/repos_experiment.jsonl" >&2
else  # SELECTED_ONLY=1: only the committed selection's mirrors are needed (skips steps 1-2)
    cp "$HERE/repos_experiment.jsonl" "$W/repos_experiment.jsonl"
fi
local_list "$W/repos_experiment.jsonl" > "$W/experiment-local.jsonl"
repopeftbench build --repos "$W/experiment-local.jsonl" --out "$W/bench" "${CAPS[@]}" --cr-test-fraction 0.2
