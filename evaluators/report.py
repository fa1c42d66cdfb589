"""The report of a run: its scores and audit as text, the per-task samples it wrote, and
paired comparisons of two runs (no torch: ``score`` and ``compare`` run without it)."""
from __future__ import annotations

import json
from pathlib import Path

from repopeftbench.dataset import Benchmark
from repopeftbench.errors import UserError
from repopeftbench.results import Results

from .scoring import ScoredTask, paired_comparison, score_tasks
from .submission import read_submission

SAMPLES_FILE = "samples.jsonl"   # one line per task: its labels and every metric of the run


def format_scores(results: Results) -> str:
    from repopeftbench.stats import markdown_table

    s = results.scores
    d = results.dataset
    unit = lambda m: "nats/token" if m == "tf_logprob" else "%"  # noqa: E731
    rows = [[f"{m} ({unit(m)})", f"{v['micro']:.2f}" if m == "tf_logprob" else f"{v['micro']:.1f}",
             f"[{v['micro_ci'][0]:.2f}, {v['micro_ci'][1]:.2f}]" if m == "tf_logprob"
             else f"[{v['micro_ci'][0]:.1f}, {v['micro_ci'][1]:.1f}]",
             f"{v['macro']:.1f}", f"[{v['macro_ci'][0]:.1f}, {v['macro_ci'][1]:.1f}]"]
            for m, v in s["metrics"].items()]
    mode = " (teacher-forced)" if results.scoring == "teacher-forced" else ""
    head = (f"{results.method_name} on {d.config}/{d.split}{mode}: {s['n_tasks']} tasks, "
            f"{s['n_repos']} repositories")
    shown = ["tf_em", "tf_logprob"] if results.scoring == "teacher-forced" else ["em", "paper_em"]
    parts = [head, markdown_table(["metric", "micro", "95% CI", "macro", "95% CI"], rows)]
    for field, title in (("assertion_type", "family"), ("target_type", "target type"),
                         ("knowledge_source", "knowledge source")):
        groups = s.get(f"by_{field}", {})
        if groups:
            parts.append(markdown_table([title, "n", *shown], [
                [k, v["n"], *(f"{v[m]:.2f}" if m == "tf_logprob" else f"{v[m]:.1f}" for m in shown)]
                for k, v in groups.items()]))
    if results.audit:
        parts.append(format_audit(results.audit))
    return "\n\n".join(parts) + "\n"


def format_audit(audit: dict) -> str:
    """The audit block: em with each adapter mode, the paired gains, the adapter cosines."""
    from repopeftbench.stats import markdown_table

    modes = audit.get("modes") or [k for k, v in audit.items() if isinstance(v, dict) and "micro_ci" in v]
    rows = [[m, f"{audit[m]['micro']:.1f}", f"[{audit[m]['micro_ci'][0]:.1f}, {audit[m]['micro_ci'][1]:.1f}]",
             f"{audit[m]['macro']:.1f}"] for m in modes]
    gains = [[k.replace("_minus_", " - "), v.get("metric", "em"), f"{v['delta']:+.2f}",
              f"[{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}]", f"{v['mde']:.2f}" if "mde" in v else "-",
              v["n_tasks"]] for k, v in audit.items() if "_minus_" in k]
    text = (f"Audit ({audit.get('metric', 'em')} %, same tasks):\n\n"
            + markdown_table(["adapter", "micro", "95% CI", "macro"], rows))
    if gains:
        text += "\n\n" + markdown_table(["paired", "metric", "diff", "95% CI",
                                          "detectable (80% power)", "tasks"], gains)
    cos = audit.get("cosine")
    if cos:
        text += (f"\n\nRaw pairwise cosine of {cos['n_adapters']} generated adapters (over "
                 f"{cos.get('over', 'items')}): mean {cos['mean']:.4f}, min {cos['min']:.4f}, "
                 f"max {cos['max']:.4f}; after removing the mean adapter: {cos['centred_mean']:.4f}")
        if "update_mean" in cos:
            text += (f"\nCosine of their weight updates B A (blind to the factors' signs): mean "
                     f"{cos['update_mean']:.4f}, min {cos['update_min']:.4f}, max "
                     f"{cos['update_max']:.4f}; after removing the mean update: "
                     f"{cos['update_centred_mean']:.4f}")
    return text


def read_samples(path: Path, dataset_sha256: str) -> list[ScoredTask]:
    """The per-task scores of a run (``samples.jsonl``), checked against the benchmark."""
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
        rows = [json.loads(x) for x in lines[1:] if x.strip()]
        scored = [ScoredTask.from_sample(r) for r in rows]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise UserError(f"{path}: not a samples file ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("dataset_sha256") != dataset_sha256:
        raise UserError(f"{path}: scored on another benchmark (dataset_sha256 "
                        f"{header.get('dataset_sha256') if isinstance(header, dict) else None!r})")
    return scored


def read_scored(run_dir: str | Path, dataset_dir: str | Path) -> list[ScoredTask]:
    """Scored tasks of a run directory: its samples.jsonl (every metric of the run, the
    teacher-forced ones included), or else its predictions.jsonl scored again."""
    bench = Benchmark(dataset_dir)
    samples = Path(run_dir) / SAMPLES_FILE
    if samples.exists():
        return read_samples(samples, bench.sha256)
    path = Path(run_dir) / "predictions.jsonl"
    if not path.exists():
        raise UserError(f"{run_dir}: no {SAMPLES_FILE} or predictions.jsonl (is it a run directory?)")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    tasks = bench.tasks(header["config"], header["split"])
    sub = read_submission(path, {t["task_id"] for t in tasks} & {
        json.loads(x)["task_id"] for x in lines[1:] if x.strip()}, bench.sha256,
        header["config"], header["split"])
    tasks = [t for t in tasks if t["task_id"] in sub.predictions]
    return score_tasks(tasks, sub.predictions)


def compare_runs(run_a: str | Path, run_b: str | Path, dataset_dir: str | Path,
                 metric: str = "em", knowledge_source: str | None = None) -> dict:
    """Paired difference run_b - run_a on their common tasks (repository bootstrap CI), with
    the smallest difference the comparison could detect; with ``knowledge_source``, on the
    tasks of that label only (``prefix``, ``repository``, ``none``)."""
    a, b = read_scored(run_a, dataset_dir), read_scored(run_b, dataset_dir)
    if knowledge_source is not None:
        a = [s for s in a if s.knowledge_source == knowledge_source]
        b = [s for s in b if s.knowledge_source == knowledge_source]
        if not a or not b:
            raise UserError(f"no task labelled knowledge_source={knowledge_source!r} in both runs")
    for run, scored in ((run_a, a), (run_b, b)):
        if scored and metric not in scored[0].scores:
            raise UserError(f"{run}: has no {metric!r} scores (it has "
                            f"{', '.join(sorted(scored[0].scores))})")
    return paired_comparison(a, b, metric=metric)


OVERLAPS = ("test function trained on", "test file trained on, not the function",
            "test file not trained on")


def training_overlap(dataset: str | Path, checkpoint: str | Path | None
                     ) -> dict[str, str] | None:
    """Each static test_in_repo task's overlap with the training tasks of a checkpoint
    (its budget options: ``max_train_tasks_per_repo``, ``max_train_repos``), one of
    ``OVERLAPS`` by task id. In-repo tasks are split 8:1:1 within a repository, so a test
    task may share its test function or file with training tasks, and what an adapter
    gains there is not what it gains on a test file it never saw. None without a
    checkpoint's ``method.json``."""
    if not checkpoint or not (Path(checkpoint) / "method.json").exists():
        return None
    from dataclasses import fields

    from .budget import TrainOptions
    options = json.loads((Path(checkpoint) / "method.json").read_text()).get("options", {})
    budget = TrainOptions(**{f.name: options[f.name] for f in fields(TrainOptions)
                             if f.name in options})
    bench = Benchmark(dataset)
    cols = ["test_file", "test_function"]
    train = budget.training_tasks(bench.train_tasks("static", columns=cols))
    files = {(t["repo_id"], t["test_file"]) for t in train}
    funcs = {(t["repo_id"], t["test_file"], t["test_function"]) for t in train}
    out = {}
    for t in bench.tasks("static", "test_in_repo", columns=cols):
        key = (t["repo_id"], t["test_file"])
        out[t["task_id"]] = (OVERLAPS[0] if (*key, t["test_function"]) in funcs
                             else OVERLAPS[1] if key in files else OVERLAPS[2])
    return out
