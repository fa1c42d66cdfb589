"""Aggregate per-task scores: micro and macro figures, breakdowns, repository bootstrap CIs,
and paired comparisons of two runs on the same tasks."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from repopeftbench.metrics import METRICS, score_one

METRIC_NAMES = tuple(METRICS)


@dataclass(frozen=True)
class ScoredTask:
    task_id: str
    repo_id: str
    assertion_type: str
    target_type: str
    scores: dict[str, float]


def score_tasks(tasks: list[dict], predictions: dict[str, str]) -> list[ScoredTask]:
    """Score the cleaned/raw prediction of every task (a missing prediction scores as empty)."""
    return [ScoredTask(t["task_id"], t["repo_id"], t["assertion_type"], t["target_type"],
                       score_one(predictions.get(t["task_id"], ""), t["target"])) for t in tasks]


def _by_repo(scored: list[ScoredTask], metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for s in scored:
        sums[s.repo_id] += s.scores[metric]
        counts[s.repo_id] += 1
    repos = sorted(sums)
    return repos, np.array([sums[r] for r in repos]), np.array([counts[r] for r in repos], dtype=float)


def bootstrap(sums: np.ndarray, counts: np.ndarray, n_boot: int, seed: int) -> dict[str, list[float]]:
    """95% intervals of micro and macro means, resampling whole repositories."""
    if len(sums) == 0:
        return {"micro": [0.0, 0.0], "macro": [0.0, 0.0]}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    micro = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    macro = (sums[idx] / counts[idx]).mean(axis=1)
    q = lambda a: [float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))]  # noqa: E731
    return {"micro": q(micro), "macro": q(macro)}


def summarise(scored: list[ScoredTask], n_boot: int = 1000, seed: int = 0) -> dict:
    """Micro and macro means (in %) with repository-bootstrap 95% CIs, per metric, plus
    breakdowns by assertion family and target type (micro, no CI) and per repository."""
    out: dict = {"n_tasks": len(scored), "n_repos": len({s.repo_id for s in scored}), "metrics": {}}
    for metric in METRIC_NAMES:
        repos, sums, counts = _by_repo(scored, metric)
        micro = float(sums.sum() / counts.sum()) if len(repos) else 0.0
        macro = float((sums / counts).mean()) if len(repos) else 0.0
        ci = bootstrap(sums, counts, n_boot, seed)
        out["metrics"][metric] = {"micro": 100 * micro, "macro": 100 * macro,
                                  "micro_ci": [100 * x for x in ci["micro"]],
                                  "macro_ci": [100 * x for x in ci["macro"]]}
    for field in ("assertion_type", "target_type"):
        groups: dict[str, list[ScoredTask]] = defaultdict(list)
        for s in scored:
            groups[getattr(s, field)].append(s)
        out[f"by_{field}"] = {g: {"n": len(items), **{m: 100 * float(np.mean([i.scores[m] for i in items]))
                                                      for m in METRIC_NAMES}}
                              for g, items in sorted(groups.items())}
    per_repo: dict[str, list[ScoredTask]] = defaultdict(list)
    for s in scored:
        per_repo[s.repo_id].append(s)
    out["per_repo"] = {r: {"n": len(items), **{m: 100 * float(np.mean([i.scores[m] for i in items]))
                                               for m in METRIC_NAMES}}
                       for r, items in sorted(per_repo.items())}
    return out


def paired_comparison(a: list[ScoredTask], b: list[ScoredTask], metric: str = "em",
                      n_boot: int = 1000, seed: int = 0) -> dict:
    """Difference b - a on the tasks both runs scored: micro difference (in points), its
    repository-bootstrap 95% CI, a two-sided bootstrap p-value, and per-task wins/losses."""
    sa = {s.task_id: s for s in a}
    common = [s for s in b if s.task_id in sa]
    if not common:
        raise ValueError("the two runs share no task")
    repos = sorted({s.repo_id for s in common})
    index = {r: i for i, r in enumerate(repos)}
    diff_sum, counts = np.zeros(len(repos)), np.zeros(len(repos))
    wins = losses = 0
    for s in common:
        d = s.scores[metric] - sa[s.task_id].scores[metric]
        diff_sum[index[s.repo_id]] += d
        counts[index[s.repo_id]] += 1
        wins += d > 0
        losses += d < 0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(repos), size=(n_boot, len(repos)))
    boots = diff_sum[idx].sum(axis=1) / counts[idx].sum(axis=1)
    delta = float(diff_sum.sum() / counts.sum())
    p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return {"metric": metric, "n_tasks": len(common), "n_repos": len(repos),
            "delta": 100 * delta, "ci": [100 * float(np.percentile(boots, 2.5)),
                                         100 * float(np.percentile(boots, 97.5))],
            "p_value": p, "wins": int(wins), "losses": int(losses)}
