"""The README's first command: build a small benchmark from what any machine has offline
(installed packages' test suites, read as snapshots, and this project's git history),
evaluate the methods that need no training, write the leaderboard."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Callable

from miners.build import BuildConfig, build
from repopeftbench.dataset import Benchmark
from repopeftbench.errors import UserError

from .backends.base import GenerationConfig
from .registry import get_method
from .harness import evaluate, format_scores
from .leaderboard import to_markdown, write_leaderboard


# Installed packages that ship their test suites, smallest first (the first 10 found).
DEMO_PACKAGES = ("mpmath", "dill", "multiprocess", "pyarrow", "networkx", "matplotlib", "numpy",
                 "sklearn", "scipy", "sympy", "pandas")
PROJECT_ID = "repopeftbench/repopeftbench"
# The demo's input budget. A 135M model computes about 4.5 ms per prompt token on two CPU
# cores; at the protocol's 4,096 tokens (RAG fills it), 20 tasks per split ran for 12
# minutes and were stopped before the last of the four runs.
# The leaderboard ranks runs of different budgets apart.
DEMO_MAX_INPUT_TOKENS = 1024
DEMO_LIMIT = 10
# Teacher-forced runs (one forward pass per task, prompts of one test function scored
# together) cover many more tasks in the time generation takes for a few; the methods
# whose prompts are the prefix alone are cheap enough for it (retrieval makes every prompt
# 1,024 tokens of its own).
DEMO_TF_LIMIT = 30


def installed_test_suites(limit: int = 10) -> list[tuple[str, Path]]:
    """(name, directory) of installed packages with a test suite (not imported)."""
    found = []
    for name in DEMO_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        d = Path(list(spec.submodule_search_locations)[0])
        if next(d.rglob("test_*.py"), None) is not None:
            found.append((name, d))
        if len(found) == limit:
            break
    return found


def project_repository() -> Path | None:
    """This project's git work tree, when it runs from a clone (editable install)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / ".git").exists() else None


def default_repo_list(out: Path) -> Path:
    """Installed packages' test suites (read as snapshots) and this project's history.

    Splits are forced, so they depend on neither the clone's folder name nor hashing luck:
    every other package (in name order) is a cross-repo test repository, the rest and the
    project are training repositories (whose in-repo test split is evaluated)."""
    suites = installed_test_suites()
    project = project_repository()
    if len(suites) < 5:
        raise UserError(f"the demo needs at least 5 installed packages with test suites, found "
                        f"{len(suites)} ({', '.join(n for n, _ in suites) or 'none'}); install "
                        f"the project with its 'eval' and 'rag' extras, or pass --repos LIST")
    rows = [{"repo_id": f"pypi/{name}", "url": str(path),
             "split": "cr_test" if i % 2 else "train"}
            for i, (name, path) in enumerate(sorted(suites))]
    if project is not None:
        rows.append({"repo_id": PROJECT_ID, "url": str(project), "split": "train"})
    repos = out / "repos.jsonl"
    repos.parent.mkdir(parents=True, exist_ok=True)
    repos.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return repos


def demo_methods() -> list[str]:
    """Registered methods that need no training, use the model, are meant for the demo
    (``Method.demo``) and whose required modules are installed."""
    from .registry import available_methods
    out = []
    for name in available_methods():
        cls = get_method(name)
        if cls.trainable or not cls.uses_model or not cls.demo or cls.sanity:
            continue
        if any(importlib.util.find_spec(m) is None for m in cls.requires):
            continue
        out.append(name)
    return out


def run_demo(out: str | Path, repos: str | Path | None = None, methods: list[str] | None = None,
             model: str = "smollm2", limit: int = DEMO_LIMIT, device: str = "cpu",
             batch_size: int | None = None, progress: bool = True,
             say: Callable[[str], None] = print,
             max_input_tokens: int = DEMO_MAX_INPUT_TOKENS,
             tf_limit: int = DEMO_TF_LIMIT) -> list[dict]:
    """Mine ``repos`` (default: installed packages' test suites and this project), evaluate
    ``methods`` (default: every method that needs no training) on the static test splits
    (a fixed sample of ``limit`` tasks each, dealt over the repositories so that the CIs
    rest on every one of them, inputs cut to ``max_input_tokens``), and the methods of
    ``Method.demo_teacher_forced`` also teacher-forced on ``tf_limit`` tasks (0: none), with the
    breakdown by knowledge source; write the leaderboard."""
    t0 = time.time()
    out = Path(out)
    repo_list = Path(repos) if repos is not None else default_repo_list(out)
    methods = methods or demo_methods()
    say(f"1/3 building the benchmark from {repo_list} into {out / 'bench'}")
    summary = build(repo_list, out / "bench", BuildConfig(), workers=2, progress=progress)
    if summary.n_ok == 0:
        raise UserError("no repository gave tasks")
    bench = Benchmark(out / "bench")
    splits = [s for s in ("test_in_repo", "test_cross_repo", "test_ood") if s in bench.splits("static")]
    say(f"2/3 evaluating {', '.join(methods)} ({model}) on {', '.join(splits)}, "
        f"{limit} tasks each, inputs cut to {max_input_tokens} tokens")
    gen = GenerationConfig(max_input_tokens=max_input_tokens)
    hf = {"batch_size": batch_size} if batch_size else None    # the HF backend's option
    for method in methods:
        for split in splits:
            results = evaluate(out / "bench", "static", split, method, model,
                               out / "runs" / f"{method}-{split}", limit=limit, device=device,
                               generation=gen, progress=progress, sample="per_repo",
                               backend_options=hf)
            say(format_scores(results))
    forced = [m for m in methods if get_method(m).demo_teacher_forced] if tf_limit else []
    for method in forced:
        say(f"   ... and {method} teacher-forced on {tf_limit} tasks per split (tf_em, "
            f"tf_token_acc, tf_logprob)")
        for split in splits:
            results = evaluate(out / "bench", "static", split, method, model,
                               out / "runs" / f"{method}-{split}-teacher-forced", limit=tf_limit,
                               device=device, generation=gen, progress=progress,
                               sample="per_repo", scoring="teacher-forced", backend_options=hf)
            say(format_scores(results))
    say(f"3/3 leaderboard in {out / 'leaderboard'}")
    entries, warning = write_leaderboard(out / "runs", out / "leaderboard")
    say(to_markdown(entries))
    if warning:
        say(warning)
    say(f"demo done in {time.time() - t0:.0f} s")
    return entries
