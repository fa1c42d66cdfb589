"""The ``repopeftbench`` command line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_build(args: argparse.Namespace) -> int:
    from miners.evolution_miner import EvolutionMinerConfig
    from miners.static_miner import StaticMinerConfig

    from miners.build import BuildConfig, build
    from miners.repolist import RepoListError
    from .stats import markdown_table

    try:
        config = BuildConfig(
            tracks=tuple(args.tracks.split(",")), seed=args.seed, cutoff=args.cutoff,
            static=StaticMinerConfig(max_file_bytes=args.max_file_bytes,
                                     prefix_max_lines=args.prefix_max_lines,
                                     cap_per_function=args.cap_per_function,
                                     cap_per_file=args.cap_per_file,
                                     cap_per_repo=args.cap_per_repo),
            evolution=EvolutionMinerConfig(max_file_bytes=args.max_file_bytes,
                                           max_diff_bytes=args.max_diff_bytes))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = build(args.repos, args.out, config, workers=args.workers,
                        cache_dir=args.cache_dir, refresh=args.refresh,
                        progress=not args.no_progress)
    except RepoListError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tables = list(summary.split_sizes)
    totals = ", ".join(f"{sum(summary.split_sizes[t].values())} {t}" for t in tables)
    print(f"\nBuilt {args.out}: {summary.n_ok}/{summary.n_repos} repositories gave tasks; {totals} rows.")
    splits = list(next(iter(summary.split_sizes.values()), {}))
    print(markdown_table(["split", *tables], [[s, *(summary.split_sizes[t][s] for t in tables)]
                                              for s in splits]))
    if summary.filter_counts:
        print(markdown_table(["filtered or counted", "count"],
                             [[k, v] for k, v in summary.filter_counts.items()]))
    if summary.failures:
        print(f"\n{len(summary.failures)} failure(s), listed in {Path(args.out) / 'failures.jsonl'}:")
        for f in summary.failures[:20]:
            where = f" [{f['track']}]" if f.get("track") else ""
            print(f"  {f['repo_id'] or f['source']}{where}: {f['reason']}")
        if len(summary.failures) > 20:
            print(f"  ... and {len(summary.failures) - 20} more")
    if summary.n_ok == 0:
        print("error: no repository gave tasks", file=sys.stderr)
        return 1
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .stats import compute_stats, format_stats

    try:
        stats = compute_stats(args.dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        import json
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        print(format_stats(stats))
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from miners.select import GitHubClient, SelectConfig, SelectError, rows_to_csv, select_repositories

    from .io import atomic_write_text

    config = SelectConfig(licenses=tuple(args.license.split(",")), min_stars=args.min_stars,
                          pushed_after=args.pushed_after, cutoff=args.cutoff,
                          max_repos=args.max_repos, check_tests=not args.no_check_tests)
    client = GitHubClient(api_url=args.api_url)
    with tqdm(desc="selecting", unit="repo", disable=args.no_progress, file=sys.stderr) as bar:
        try:
            rows = select_repositories(client, config, progress=bar.update)
        except SelectError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    atomic_write_text(args.out, rows_to_csv(rows))
    n_ood = sum(r["split"] == "ood" for r in rows)
    print(f"Wrote {args.out}: {len(rows) - n_ood} in-distribution and {n_ood} ood repositories "
          f"({client.requests} API requests).")
    return 0


def _batch_size(args: argparse.Namespace) -> int:
    """8 on CUDA; 1 on CPU, where padded batches measured slower than one prompt at a time
    (benchmarks/bench_eval_throughput.py)."""
    if args.batch_size is not None:
        return args.batch_size
    return 8 if args.device.startswith("cuda") else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from evaluators.generation import GenerationConfig
    from evaluators.harness import evaluate, format_scores

    try:
        options = dict(kv.split("=", 1) for kv in args.option)
    except ValueError:
        print("error: --option takes KEY=VALUE", file=sys.stderr)
        return 2
    gen = GenerationConfig(max_new_tokens=args.max_new_tokens, max_input_tokens=args.max_input_tokens,
                           batch_size=_batch_size(args))
    try:
        results = evaluate(args.dataset, args.config, args.split, args.method, args.model, args.out,
                           limit=args.limit, device=args.device, generation=gen,
                           method_options=options, progress=not args.no_progress)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    print(format_scores(results))
    print(f"Run written to {args.out} (predictions.jsonl, results.json); "
          f"{results['n_predicted_now']} tasks predicted now, {results['wall_time_s']} s.")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from evaluators.harness import format_scores, score_predictions
    from evaluators.submission import SubmissionError

    try:
        results = score_predictions(args.dataset, args.config, args.split, args.predictions, args.out)
    except (SubmissionError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_scores(results))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from evaluators.leaderboard import to_markdown, write_leaderboard

    try:
        entries = write_leaderboard(args.runs, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(to_markdown(entries))
    print(f"Wrote {args.out}/leaderboard.md, index.html and leaderboard.png ({len(entries)} runs).")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json as _json

    from evaluators.harness import read_scored

    try:
        from evaluators.scoring import paired_comparison
        a, b = read_scored(args.run_a, args.dataset), read_scored(args.run_b, args.dataset)
        result = paired_comparison(a, b, metric=args.metric)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_json.dumps(result, indent=2))
    print(f"{args.run_b} - {args.run_a}: {result['delta']:+.2f} points of {args.metric} "
          f"(95% CI [{result['ci'][0]:+.2f}, {result['ci'][1]:+.2f}], p={result['p_value']:.3f}, "
          f"{result['wins']} wins / {result['losses']} losses over {result['n_tasks']} tasks)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Build a small benchmark, evaluate the model zero-shot, write the leaderboard."""
    import json as _json
    import subprocess
    from pathlib import Path as _Path

    from evaluators.generation import GenerationConfig
    from evaluators.harness import evaluate, format_scores
    from evaluators.leaderboard import to_markdown, write_leaderboard

    from miners.build import BuildConfig, build
    from .dataset import Benchmark

    out = _Path(args.out)
    repos = args.repos
    if repos is None:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
        if top.returncode != 0:
            print("error: not inside a git repository; pass --repos LIST", file=sys.stderr)
            return 2
        root = _Path(top.stdout.strip())
        repos = out / "repos.jsonl"
        repos.parent.mkdir(parents=True, exist_ok=True)
        repos.write_text(_json.dumps({"repo_id": f"local/{root.name}", "url": str(root)}) + "\n")
    print(f"1/3 building the benchmark from {repos} into {out / 'bench'}")
    summary = build(repos, out / "bench", BuildConfig(), workers=1, progress=not args.no_progress)
    if summary.n_ok == 0:
        print("error: no repository gave tasks", file=sys.stderr)
        return 1
    bench = Benchmark(out / "bench")
    splits = [s for s in ("test_in_repo", "test_cross_repo", "test_ood") if s in bench.splits("static")]
    print(f"2/3 evaluating {args.method} ({args.model}) on {', '.join(splits)}, "
          f"at most {args.limit} tasks each")
    for split in splits:
        results = evaluate(out / "bench", "static", split, args.method, args.model,
                           out / "runs" / f"{args.method}-{split}", limit=args.limit,
                           device=args.device, generation=GenerationConfig(batch_size=_batch_size(args)),
                           progress=not args.no_progress)
        print(format_scores(results))
    print(f"3/3 leaderboard in {out / 'leaderboard'}")
    print(to_markdown(write_leaderboard(out / "runs", out / "leaderboard")))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from evaluators.registry import METHODS, available_methods

    for name in available_methods():
        doc = (METHODS[name].__doc__ or "").strip().splitlines()
        print(f"{name:12s} {doc[0] if doc else ''}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repopeftbench",
        description="Build and evaluate RepoPeftBench, the repository-adaptation benchmark.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="mine repositories into benchmark Parquet tables",
                       description="Mine a list of repositories into the benchmark tables, "
                                   "with a data card and a manifest. Reruns resume.")
    b.add_argument("--repos", required=True, help="repository list (.csv, .tsv or .jsonl) with "
                   "columns repo_id, url and optionally sha, license, stars, created_at, split")
    b.add_argument("--out", required=True, help="output directory")
    b.add_argument("--tracks", default="static",
                   help="comma-separated tracks: static, evolution (default: static)")
    b.add_argument("--workers", type=_positive_int, default=min(4, os.cpu_count() or 1),
                   help="worker processes, one repository each (default: min(4, CPUs))")
    b.add_argument("--seed", type=int, default=0, help="split and sampling seed (default: 0)")
    b.add_argument("--cutoff", default=None, help="ISO date: in-distribution histories end here; "
                   "repositories created later are out-of-distribution (ood)")
    b.add_argument("--cache-dir", default=None,
                   help="where remote repositories are cloned (default: OUT/.cache/repos)")
    b.add_argument("--refresh", action="store_true", help="fetch new commits into cached clones")
    b.add_argument("--max-file-bytes", type=_positive_int, default=1_000_000,
                   help="skip test files larger than this (default: 1000000)")
    b.add_argument("--prefix-max-lines", type=_positive_int, default=600)
    b.add_argument("--cap-per-function", type=_positive_int, default=5)
    b.add_argument("--cap-per-file", type=_positive_int, default=20)
    b.add_argument("--cap-per-repo", type=_positive_int, default=200)
    b.add_argument("--max-diff-bytes", type=_positive_int, default=1_000_000,
                   help="truncate production-code diffs longer than this (default: 1000000)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("select", help="make a repository list with the GitHub search API",
                       description="Select repositories by the criteria of the benchmark "
                                   "(token from GITHUB_TOKEN) and write a list for 'build'.")
    c.add_argument("--out", required=True, help="CSV file to write")
    c.add_argument("--license", default="mit", help="comma-separated licences (default: mit)")
    c.add_argument("--min-stars", type=int, default=300)
    c.add_argument("--pushed-after", default="2023-01-01")
    c.add_argument("--cutoff", default="2025-04-01",
                   help="created before: in-distribution; after: ood (default: 2025-04-01)")
    c.add_argument("--max-repos", type=_positive_int, default=None,
                   help="at most this many per group (in-distribution, ood)")
    c.add_argument("--no-check-tests", action="store_true",
                   help="do not check each repository's root for a test suite")
    c.add_argument("--api-url", default="https://api.github.com")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_select)

    e = sub.add_parser("evaluate", help="run a method on a benchmark split and score it",
                       description="Run a registered method (see 'repopeftbench methods') on one split "
                                   "with a Hugging Face model; writes predictions and results.")
    e.add_argument("--dataset", required=True, help="benchmark directory written by 'build'")
    e.add_argument("--config", default="static", choices=["static", "evolution"])
    e.add_argument("--split", default="test_cross_repo")
    e.add_argument("--method", default="pretrained")
    e.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option (repeatable)")
    e.add_argument("--model", default="smollm2",
                   help="Hugging Face model name or path, or an offline alias: smollm2 (default), "
                        "qwen2.5-coder-0.5b")
    e.add_argument("--out", required=True, help="run directory")
    e.add_argument("--limit", type=_positive_int, default=None,
                   help="evaluate a fixed sample of N tasks")
    e.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (bf16 on CUDA)")
    e.add_argument("--batch-size", type=_positive_int, default=None,
                   help="prompts per batch (default: 8 on CUDA, 1 on CPU)")
    e.add_argument("--max-new-tokens", type=_positive_int, default=64)
    e.add_argument("--max-input-tokens", type=_positive_int, default=4096)
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    mt = sub.add_parser("methods", help="list the registered methods",
                        description="List built-in methods and those installed packages add "
                                    "through the 'repopeftbench.methods' entry-point group.")
    mt.set_defaults(func=cmd_methods)

    sc = sub.add_parser("score", help="validate and score a predictions file",
                        description="Validate a predictions JSONL (header line with dataset_sha256, "
                                    "config, split; then task_id/prediction lines) and score it.")
    sc.add_argument("--dataset", required=True)
    sc.add_argument("--config", default="static", choices=["static", "evolution"])
    sc.add_argument("--split", required=True)
    sc.add_argument("--predictions", required=True)
    sc.add_argument("--out", default=None, help="write results.json into this directory")
    sc.set_defaults(func=cmd_score)

    lb = sub.add_parser("leaderboard", help="render the leaderboard from run directories",
                        description="Collect every results.json under --runs and write "
                                    "leaderboard.md, index.html (sortable) and leaderboard.png.")
    lb.add_argument("--runs", required=True)
    lb.add_argument("--out", required=True)
    lb.set_defaults(func=cmd_leaderboard)

    cp = sub.add_parser("compare", help="paired comparison of two runs on the same tasks",
                        description="Difference run_b - run_a with a repository bootstrap CI.")
    cp.add_argument("run_a")
    cp.add_argument("run_b")
    cp.add_argument("--dataset", required=True)
    cp.add_argument("--metric", default="em", choices=["em", "paper_em", "strict_em", "edit_sim"])
    cp.set_defaults(func=cmd_compare)

    d = sub.add_parser("demo", help="build a small benchmark, evaluate, write the leaderboard",
                       description="The main job on a built-in default: mine the git repository "
                                   "you are in (or --repos), evaluate the default model zero-shot "
                                   "on its test splits, and write the leaderboard. Offline.")
    d.add_argument("--repos", default=None, help="repository list (default: the current repository)")
    d.add_argument("--out", default="build/demo")
    d.add_argument("--method", default="pretrained")
    d.add_argument("--model", default="smollm2")
    d.add_argument("--limit", type=_positive_int, default=40, help="tasks per split (default 40)")
    d.add_argument("--device", default="cpu")
    d.add_argument("--batch-size", type=_positive_int, default=None,
                   help="prompts per batch (default: 8 on CUDA, 1 on CPU)")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("stats", help="print statistics of a built benchmark",
                       description="Print split sizes, family and target-type mix, lengths "
                                   "and filter counts of a built benchmark directory.")
    s.add_argument("dir", help="benchmark directory written by 'build'")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.set_defaults(func=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
