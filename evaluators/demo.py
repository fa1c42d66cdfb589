"""The README's first command: build a small benchmark, evaluate, write the leaderboard."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

from miners.build import BuildConfig, build
from repopeftbench.dataset import Benchmark
from repopeftbench.errors import UserError

from .backends.base import GenerationConfig
from .harness import evaluate, format_scores
from .leaderboard import to_markdown, write_leaderboard


def default_repo_list(out: Path) -> Path:
    """A list holding the git repository the command runs in."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if top.returncode != 0:
        raise UserError("not inside a git repository; pass --repos LIST")
    root = Path(top.stdout.strip())
    repos = out / "repos.jsonl"
    repos.parent.mkdir(parents=True, exist_ok=True)
    repos.write_text(json.dumps({"repo_id": f"local/{root.name}", "url": str(root)}) + "\n")
    return repos


def run_demo(out: str | Path, repos: str | Path | None = None, method: str = "pretrained",
             model: str = "smollm2", limit: int = 40, device: str = "cpu",
             batch_size: int | None = None, progress: bool = True,
             say: Callable[[str], None] = print) -> list[dict]:
    """Mine ``repos`` (default: the current git repository), evaluate ``method`` on its
    static test splits (at most ``limit`` tasks each), write the leaderboard."""
    out = Path(out)
    repo_list = Path(repos) if repos is not None else default_repo_list(out)
    say(f"1/3 building the benchmark from {repo_list} into {out / 'bench'}")
    summary = build(repo_list, out / "bench", BuildConfig(), workers=1, progress=progress)
    if summary.n_ok == 0:
        raise UserError("no repository gave tasks")
    bench = Benchmark(out / "bench")
    splits = [s for s in ("test_in_repo", "test_cross_repo", "test_ood") if s in bench.splits("static")]
    say(f"2/3 evaluating {method} ({model}) on {', '.join(splits)}, at most {limit} tasks each")
    for split in splits:
        results = evaluate(out / "bench", "static", split, method, model,
                           out / "runs" / f"{method}-{split}", limit=limit, device=device,
                           generation=GenerationConfig(batch_size=batch_size), progress=progress)
        say(format_scores(results))
    say(f"3/3 leaderboard in {out / 'leaderboard'}")
    entries, warning = write_leaderboard(out / "runs", out / "leaderboard")
    say(to_markdown(entries))
    if warning:
        say(warning)
    return entries
