"""Aggregate per-task scores: micro and macro figures, breakdowns, repository bootstrap CIs,
and paired comparisons of two runs on the same tasks."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from repopeftbench.metrics import EXTRA_METRICS, METRICS, available_extras, score_one

METRIC_NAMES = tuple(METRICS)

# (z of 97.5%) + (z of 80%): a difference of this many standard errors is detected with
# 80% power by a two-sided test at 5%
POWER_FACTOR = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.80)

# Teacher-forced metrics (one forward pass over prompt + target + stop per task).
TF_METRICS = ("tf_em", "tf_token_acc", "tf_logprob")
# Metrics reported in % (0/1 or 0..1 per task); the others in their own unit (nats).
UNSCALED = {"tf_logprob"}


def metric_scale(metric: str) -> float:
    return 1.0 if metric in UNSCALED else 100.0


@dataclass(frozen=True)
class ScoredTask:
    task_id: str
    repo_id: str
    assertion_type: str
    target_type: str
    scores: dict[str, float]
    knowledge_source: str = "unknown"     # prefix, repository, none (older benchmarks: unknown)

    def sample(self) -> dict:
        """The per-task line of ``samples.jsonl``."""
        return {"task_id": self.task_id, "repo_id": self.repo_id,
                "assertion_type": self.assertion_type, "target_type": self.target_type,
                "knowledge_source": self.knowledge_source, **self.scores}

    @classmethod
    def from_sample(cls, d: dict) -> "ScoredTask":
        keys = ("task_id", "repo_id", "assertion_type", "target_type", "knowledge_source")
        return cls(d["task_id"], d["repo_id"], d["assertion_type"], d["target_type"],
                   {k: float(v) for k, v in d.items() if k not in keys},
                   d.get("knowledge_source", "unknown"))


def _scored(t: dict, scores: dict[str, float]) -> ScoredTask:
    return ScoredTask(t["task_id"], t["repo_id"], t["assertion_type"], t["target_type"], scores,
                      t.get("knowledge_source") or "unknown")


def score_tasks(tasks: list[dict], predictions: dict[str, str]) -> list[ScoredTask]:
    """Score the cleaned/raw prediction of every task (a missing prediction scores as empty),
    with the optional metrics whose packages are installed (CodeBLEU)."""
    extras = available_extras()
    return [_scored(t, score_one(predictions.get(t["task_id"], ""), t["target"], extras))
            for t in tasks]


def tf_scored_tasks(tasks: list[dict], records: dict[str, dict]) -> list[ScoredTask]:
    """Tasks scored teacher-forced (``records[task_id]["tf"]`` holds the metrics)."""
    return [_scored(t, {m: float(records[t["task_id"]]["tf"][m]) for m in TF_METRICS})
            for t in tasks]


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


BREAKDOWNS = ("assertion_type", "target_type", "knowledge_source")


def summarise(scored: list[ScoredTask], n_boot: int = 1000, seed: int = 0,
              metrics: tuple[str, ...] | None = None) -> dict:
    """Micro and macro means (in %, ``tf_logprob`` in nats per token) with
    repository-bootstrap 95% CIs, per metric, plus breakdowns by assertion family, target
    type and knowledge source (micro, no CI) and per repository."""
    if metrics is None:
        metrics = tuple(m for m in (*METRIC_NAMES, *EXTRA_METRICS, *TF_METRICS)
                        if scored and m in scored[0].scores) or METRIC_NAMES
    out: dict = {"n_tasks": len(scored), "n_repos": len({s.repo_id for s in scored}), "metrics": {}}
    for metric in metrics:
        scale = metric_scale(metric)
        repos, sums, counts = _by_repo(scored, metric)
        micro = float(sums.sum() / counts.sum()) if len(repos) else 0.0
        macro = float((sums / counts).mean()) if len(repos) else 0.0
        ci = bootstrap(sums, counts, n_boot, seed)
        out["metrics"][metric] = {"micro": scale * micro, "macro": scale * macro,
                                  "micro_ci": [scale * x for x in ci["micro"]],
                                  "macro_ci": [scale * x for x in ci["macro"]]}

    def means(items: list[ScoredTask]) -> dict:
        return {"n": len(items), **{m: metric_scale(m) * float(np.mean([i.scores[m] for i in items]))
                                    for m in metrics}}
    for field in BREAKDOWNS:
        groups: dict[str, list[ScoredTask]] = defaultdict(list)
        for s in scored:
            groups[getattr(s, field)].append(s)
        out[f"by_{field}"] = {g: means(items) for g, items in sorted(groups.items())}
    per_repo: dict[str, list[ScoredTask]] = defaultdict(list)
    for s in scored:
        per_repo[s.repo_id].append(s)
    out["per_repo"] = {r: means(items) for r, items in sorted(per_repo.items())}
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
    per_task = np.array([s.scores[metric] - sa[s.task_id].scores[metric] for s in common])
    scale = metric_scale(metric)
    return {"metric": metric, "n_tasks": len(common), "n_repos": len(repos),
            "delta": scale * delta, "ci": [scale * float(np.percentile(boots, 2.5)),
                                           scale * float(np.percentile(boots, 97.5))],
            "p_value": p, "wins": int(wins), "losses": int(losses),
            # the smallest difference this comparison could detect (80% power, two-sided
            # 5%), from the spread of the repository bootstrap, and the per-task spread
            "mde": scale * POWER_FACTOR * float(np.std(boots)),
            "sd_per_task": scale * float(np.std(per_task, ddof=1)) if len(per_task) > 1 else 0.0}


def tasks_needed(sd_per_task: float, effect: float) -> int:
    """Tasks a paired comparison needs to detect ``effect`` (same unit as the spread) with
    80% power at two-sided 5%, treating tasks as independent (a lower bound when
    repositories cluster)."""
    if effect <= 0:
        raise ValueError("effect must be positive")
    return int(np.ceil((POWER_FACTOR * sd_per_task / effect) ** 2))
