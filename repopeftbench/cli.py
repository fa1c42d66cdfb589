"""The ``repopeftbench`` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import __version__
from .errors import UserError
from .schema import TASK_TABLES


# metrics a paired comparison can take (generated, then teacher-forced); no torch needed
METRIC_CHOICES = ("em", "paper_em", "strict_em", "edit_sim", "paper_edit_sim", "tf_em",
                  "tf_token_acc", "tf_logprob")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_build(args: argparse.Namespace) -> int:
    from miners.build import BuildConfig, build, format_summary
    from miners.context_miner import ContextConfig
    from miners.evolution_miner import EvolutionMinerConfig
    from miners.static_miner import StaticMinerConfig

    try:
        config = BuildConfig(
            tracks=tuple(args.tracks.split(",")), seed=args.seed, cutoff=args.cutoff,
            cr_val_fraction=args.cr_val_fraction, cr_test_fraction=args.cr_test_fraction,
            static=StaticMinerConfig(max_file_bytes=args.max_file_bytes,
                                     prefix_max_lines=args.prefix_max_lines,
                                     cap_per_function=args.cap_per_function,
                                     cap_per_file=args.cap_per_file,
                                     cap_per_repo=args.cap_per_repo, profile=args.profile),
            evolution=EvolutionMinerConfig(max_file_bytes=args.max_file_bytes,
                                           max_diff_bytes=args.max_diff_bytes),
            context=ContextConfig(max_file_bytes=args.context_max_file_bytes))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    summary = build(args.repos, args.out, config, workers=args.workers, cache_dir=args.cache_dir,
                    refresh=args.refresh, progress=not args.no_progress, work_dir=args.work_dir,
                    overwrite=args.overwrite)
    print(format_summary(summary))
    if summary.n_ok == 0:
        print(f"error: no repository gave tasks; {args.out} left as it was", file=sys.stderr)
        return 1
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .stats import compute_stats, format_stats
    from .verify import verified_identity

    verified_identity(args.dir)
    stats = compute_stats(args.dir)
    print(json.dumps(stats, indent=2, sort_keys=True) if args.json else format_stats(stats))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    report = verify(args.dir, use_cache=not args.no_cache)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    state = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{args.dir}: {state}; {report.n_files} files checked ({report.n_hashed} hashed, the "
          f"rest unchanged since their last check); identity sha256:{report.identity}")
    return 0 if report.ok else 1


def cmd_select(args: argparse.Namespace) -> int:
    from miners.select import SelectConfig, write_selection

    config = SelectConfig(licenses=tuple(args.license.split(",")), min_stars=args.min_stars,
                          pushed_after=args.pushed_after, cutoff=args.cutoff,
                          max_repos=args.max_repos, check_tests=not args.no_check_tests)
    print(write_selection(config, args.out, api_url=args.api_url, progress=not args.no_progress))
    return 0


def _generation(args: argparse.Namespace):
    from evaluators.backends.base import GenerationConfig
    return GenerationConfig(max_new_tokens=args.max_new_tokens,
                            max_input_tokens=args.max_input_tokens)


def _backend_options(args: argparse.Namespace) -> list[str]:
    """``--backend-option``s, with ``--batch-size`` as the hf backend's ``batch_size``."""
    options = list(args.backend_option)
    if getattr(args, "batch_size", None) is not None:
        if args.backend != "hf":
            raise UserError(f"--batch-size is the hf backend's option; the {args.backend} "
                            f"backend schedules its own batches (see its --backend-option)")
        options.append(f"batch_size={args.batch_size}")
    return options


def cmd_evaluate(args: argparse.Namespace) -> int:
    from evaluators.harness import evaluate, format_scores

    results = evaluate(args.dataset, args.config, args.split, args.method, args.model, args.out,
                       limit=args.limit, device=args.device, generation=_generation(args),
                       method_options=args.option, checkpoint=args.checkpoint, seed=args.seed,
                       backend=args.backend, progress=not args.no_progress,
                       sample=args.sample.replace("-", "_"), scoring=args.scoring,
                       shard=args.shard, backend_options=_backend_options(args),
                       repos=args.repos)
    print(format_scores(results))
    print(f"Run written to {args.out} (predictions.jsonl, results.json); "
          f"{results.n_predicted_now} tasks predicted now, {results.wall_time_s} s.")
    return 0


def _run_spec(text: str):
    """OUT=METHOD[,checkpoint=DIR][,KEY=VALUE...]: one run of evaluate-together."""
    from evaluators.harness import RunSpec

    out, sep, rest = text.partition("=")
    parts = rest.split(",") if rest else []
    if not (sep and out and parts and parts[0] and "=" not in parts[0]):
        raise argparse.ArgumentTypeError(f"{text!r}: give OUT=METHOD[,checkpoint=DIR][,KEY=VALUE...]")
    checkpoint, options = None, []
    for item in parts[1:]:
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"{text!r}: {item!r} is not KEY=VALUE")
        if key == "checkpoint":
            checkpoint = value
        else:
            options.append(item)
    return RunSpec(method=parts[0], out_dir=out, options=options, checkpoint=checkpoint)


def cmd_evaluate_together(args: argparse.Namespace) -> int:
    from evaluators.harness import evaluate_together, format_scores

    t0 = time.time()
    all_results = evaluate_together(args.dataset, args.config, args.split, args.run, args.model,
                                    limit=args.limit, device=args.device,
                                    generation=_generation(args), seed=args.seed,
                                    backend=args.backend, progress=not args.no_progress,
                                    sample=args.sample.replace("-", "_"), scoring=args.scoring,
                                    shard=args.shard, backend_options=_backend_options(args),
                                    repos=args.repos)
    for spec, results in zip(args.run, all_results):
        print(f"== {spec.out_dir} ({spec.method})")
        print(format_scores(results))
    print(f"{len(all_results)} runs written; {time.time() - t0:.1f} s together.")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from evaluators.harness import format_scores, merge

    results = merge(args.runs, args.out)
    print(format_scores(results))
    print(f"Merged {len(args.runs)} shards into {args.out} ({results.scores['n_tasks']} tasks).")
    return 0


def _shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    if not (sep and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
        raise argparse.ArgumentTypeError(f"{text!r}: give I/N with 0 <= I < N (e.g. 0/4)")
    return int(i), int(n)


def cmd_train(args: argparse.Namespace) -> int:
    from evaluators.harness import train

    out = train(args.method, args.dataset, args.config, args.out, model=args.model,
                options=args.option, device=args.device, seed=args.seed, backend=args.backend,
                progress=not args.no_progress, backend_options=args.backend_option)
    print(f"Trained {args.method} on {args.config}/train of {args.dataset}; checkpoint in {out}.")
    print(f"Evaluate it with: repopeftbench evaluate --method {args.method} --checkpoint {out} "
          f"--dataset {args.dataset} --config {args.config} --split SPLIT --out RUN_DIR")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from code2lora_models.adapt import adapt, update

    if args.update is not None:
        if args.repo or args.checkpoint or args.out:
            raise UserError("adapt --update DIR takes no REPO_PATH, --checkpoint or --out "
                            "(they are read from DIR/code2lora.json)")
        out = update(args.update, device=args.device)
        print(f"Updated the adapter in {out} with the commits since its last commit.")
        return 0
    if not (args.repo and args.checkpoint and args.out):
        raise UserError("adapt needs REPO_PATH, --checkpoint CKPT and --out DIR (or --update DIR)")
    out = adapt(args.repo, args.checkpoint, args.out, model=args.model, device=args.device)
    print(f"Wrote a PEFT adapter for {args.repo} to {out} (load it with "
          f"peft.PeftModel.from_pretrained); sidecar: {out}/code2lora.json")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from evaluators.harness import format_scores, score_predictions

    print(format_scores(score_predictions(args.dataset, args.config, args.split,
                                          args.predictions, args.out)))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from evaluators.leaderboard import to_markdown, write_leaderboard

    entries, warning = write_leaderboard(args.runs, args.out)
    print(to_markdown(entries))
    print(f"Wrote {args.out}/leaderboard.md, index.html and leaderboard.png ({len(entries)} runs).")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from evaluators.harness import compare_runs

    result = compare_runs(args.run_a, args.run_b, args.dataset, args.metric, args.knowledge_source)
    print(json.dumps(result, indent=2))
    unit = "nats/token" if args.metric == "tf_logprob" else "points"
    print(f"{args.run_b} - {args.run_a}: {result['delta']:+.2f} {unit} of {args.metric} "
          f"(95% CI [{result['ci'][0]:+.2f}, {result['ci'][1]:+.2f}], p={result['p_value']:.3f}, "
          f"{result['wins']} wins / {result['losses']} losses over {result['n_tasks']} tasks "
          f"of {result['n_repos']} repositories); smallest detectable difference "
          f"{result['mde']:.2f} {unit} (80% power, two-sided 5%)")
    if abs(result["delta"]) < result["mde"] and result["ci"][0] <= 0 <= result["ci"][1]:
        print(f"note: no difference detected, and one below {result['mde']:.2f} {unit} could not "
              f"have been: too few tasks or repositories to call it 'no difference'")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from evaluators.demo import run_demo

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    given = {k: v for k, v in (("limit", args.limit), ("max_input_tokens", args.max_input_tokens),
                               ("tf_limit", args.tf_limit)) if v is not None}   # else run_demo's
    run_demo(args.out, args.repos, methods, args.model, device=args.device,
             batch_size=args.batch_size, progress=not args.no_progress, **given)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from evaluators.registry import METHODS, available_methods, option_fields

    for name in available_methods():
        cls = METHODS[name]
        doc = (cls.__doc__ or "").strip().splitlines()
        kind = "trained" if cls.trainable else "-"
        print(f"{name:16s} {kind:8s} {doc[0] if doc else ''}")
        for key, (tp, default) in option_fields(cls.Options).items():
            print(f"{'':16s} {'':8s}   --option {key}=... ({getattr(tp, '__name__', tp)}, "
                  f"default {default!r})")
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2",
                   help="Hugging Face model name or path, or an offline alias: smollm2 (default), "
                        "qwen2.5-coder-0.5b")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (bf16 on CUDA)")
    from evaluators.backends import BACKENDS
    p.add_argument("--backend", default="hf", choices=sorted(BACKENDS),
                   help="generation backend (default: hf, the reference; vllm: vLLM's engine, "
                        "a LoRA adapter per prompt)")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the backend's engine, e.g. max_loras=16 or "
                        "gpu_memory_utilization=0.9 for vllm (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_method_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--dataset", required=True, help="benchmark directory written by 'build'")
    p.add_argument("--config", default="static", choices=list(TASK_TABLES),
                   help="track (default: static)")
    if default is None:
        p.add_argument("--method", required=True, help="registered method (repopeftbench methods)")
    else:
        p.add_argument("--method", default=default,
                       help=f"registered method (repopeftbench methods; default: {default})")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, parsed to its type (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="training and sampling seed (default: 0)")
    _add_model_args(p)


def _add_task_args(p: argparse.ArgumentParser, scoring: str = "generate") -> None:
    """Which tasks a run scores, and how (evaluate and evaluate-together)."""
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="evaluate a fixed sample of N tasks")
    from evaluators.harness import SCORINGS
    p.add_argument("--scoring", choices=SCORINGS, default=scoring,
                   help="generate each completion and score it, or score the target "
                        "teacher-forced in one forward pass: tf_em (strict greedy exact match "
                        f"without decoding), tf_token_acc, tf_logprob (default: {scoring})")
    from .dataset import SAMPLES
    p.add_argument("--sample", choices=[x.replace("_", "-") for x in SAMPLES], default=SAMPLES[0],
                   help="how --limit samples: the first N tasks by task-id hash (default), or "
                        "tasks dealt round-robin over repositories (covers more of them)")
    p.add_argument("--repos", type=_positive_int, default=None, metavar="N",
                   help="evaluate the tasks of the split's first N repositories only (by "
                        "repo-id hash, nested; the same N repositories that the training option "
                        "max_train_repos=N picks on an in-repo split); --limit samples within them")
    p.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="evaluate shard I of N only: whole repositories, dealt evenly by task "
                        "count; each shard writes its own run directory, and 'merge' joins them "
                        "into the unsharded run (e.g. one SLURM array task per shard)")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="the hf backend's prompts per batch (--backend-option batch_size=N; "
                        "default: 8 on CUDA, 1 on CPU)")
    from evaluators.backends.base import GenerationConfig
    protocol = GenerationConfig()
    p.add_argument("--max-new-tokens", type=_positive_int, default=protocol.max_new_tokens,
                   help=f"the protocol's new tokens at most (default: {protocol.max_new_tokens})")
    p.add_argument("--max-input-tokens", type=_positive_int, default=protocol.max_input_tokens,
                   help=f"the input budget, left-truncated (default: {protocol.max_input_tokens})")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repopeftbench",
        description="Build and evaluate RepoPeftBench, the repository-adaptation benchmark.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
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
    b.add_argument("--cr-val-fraction", type=float, default=0.1,
                   help="share of repositories held out for cross-repo validation, chosen by a "
                        "hash of (seed, repo_id), so adding repositories moves none (default: 0.1)")
    b.add_argument("--cr-test-fraction", type=float, default=0.1,
                   help="share of repositories held out for the cross-repo test (default: 0.1)")
    b.add_argument("--cache-dir", default=None,
                   help="where remote repositories are cloned (default: WORK_DIR/repos)")
    b.add_argument("--work-dir", default=None,
                   help="resume state and clones, kept out of the published directory "
                        "(default: .OUT.work beside OUT)")
    b.add_argument("--refresh", action="store_true", help="fetch new commits into cached clones")
    b.add_argument("--overwrite", action="store_true",
                   help="replace OUT whole even when it is not a benchmark (by default a "
                        "non-empty OUT must be a benchmark, which is replaced whole)")
    b.add_argument("--max-file-bytes", type=_positive_int, default=1_000_000,
                   help="skip test files larger than this (default: 1000000)")
    b.add_argument("--profile", default="default", choices=["default", "paper"],
                   help="task selection: ours (default) or the published code's (paper: its "
                        "test-file detection, filters, caps and balancing)")
    b.add_argument("--prefix-max-lines", type=_positive_int, default=600)
    b.add_argument("--cap-per-function", type=_positive_int, default=5)
    b.add_argument("--cap-per-file", type=_positive_int, default=20)
    b.add_argument("--cap-per-repo", type=_positive_int, default=200)
    b.add_argument("--max-diff-bytes", type=_positive_int, default=1_000_000,
                   help="truncate production-code diffs longer than this (default: 1000000)")
    b.add_argument("--context-max-file-bytes", type=_positive_int, default=1_000_000,
                   help="leave context files larger than this out of the context table "
                        "(default: 1000000)")
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
                                   "with a Hugging Face model; writes predictions and results. A "
                                   "trained method uses --checkpoint, or trains first in OUT/artifacts.")
    _add_method_args(e, default="pretrained")
    e.add_argument("--split", default="test_cross_repo")
    e.add_argument("--out", required=True, help="run directory")
    e.add_argument("--checkpoint", default=None,
                   help="checkpoint directory written by 'repopeftbench train'")
    _add_task_args(e)
    _add_generation_args(e)
    e.set_defaults(func=cmd_evaluate)

    et = sub.add_parser(
        "evaluate-together", help="several methods on the same tasks, the model loaded once",
        description="Evaluate several methods on one split with one model. Each run directory, "
                    "cache and results record is what 'evaluate' of that method alone writes; "
                    "teacher-forced (the default here), every method's and audit mode's "
                    "configuration of a task is scored in one pass, so the layers below the "
                    "adapters (top_layers) run once for all of them.")
    et.add_argument("--dataset", required=True, help="benchmark directory written by 'build'")
    et.add_argument("--config", default="static", choices=list(TASK_TABLES),
                    help="track (default: static)")
    et.add_argument("--split", default="test_cross_repo")
    et.add_argument("--run", type=_run_spec, action="append", required=True,
                    metavar="OUT=METHOD[,checkpoint=DIR][,KEY=VALUE...]",
                    help="a run: its directory, method, checkpoint and options (repeatable)")
    et.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    _add_model_args(et)
    _add_task_args(et, scoring="teacher-forced")
    _add_generation_args(et)
    et.set_defaults(func=cmd_evaluate_together)

    mg = sub.add_parser("merge", help="join the shards of one evaluation into one run",
                        description="Join the run directories of 'evaluate --shard I/N' (each "
                                    "of 0..N-1 once, one run) into one run directory whose "
                                    "results equal the unsharded run's.")
    mg.add_argument("runs", nargs="+", help="the shards' run directories")
    mg.add_argument("--out", required=True, help="the merged run directory")
    mg.set_defaults(func=cmd_merge)

    t = sub.add_parser("train", help="train a method once and save its checkpoint",
                       description="Train a registered method on the training tables of a track "
                                   "and save what it learned to --out, for 'evaluate --checkpoint'.")
    _add_method_args(t, default=None)
    t.add_argument("--out", required=True, help="checkpoint directory")
    t.set_defaults(func=cmd_train)

    mt = sub.add_parser("methods", help="list the registered methods",
                        description="List built-in methods and those installed packages add "
                                    "through the 'repopeftbench.methods' entry-point group.")
    mt.set_defaults(func=cmd_methods)

    sc = sub.add_parser("score", help="validate and score a predictions file",
                        description="Validate a predictions JSONL (header line with dataset_sha256, "
                                    "config, split; then task_id/prediction lines) and score it.")
    sc.add_argument("--dataset", required=True)
    sc.add_argument("--config", default="static", choices=list(TASK_TABLES))
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
    cp.add_argument("--metric", default="em", choices=[*METRIC_CHOICES],
                    help="per-task metric to pair (teacher-forced runs: tf_em, tf_token_acc, "
                         "tf_logprob; default: em)")
    cp.add_argument("--knowledge-source", choices=("prefix", "repository", "none"), default=None,
                    help="pair the tasks of one knowledge-source label only")
    cp.set_defaults(func=cmd_compare)

    a = sub.add_parser("adapt", help="turn a local git repository into a PEFT adapter (Code2LoRA)",
                       description="Generate a LoRA adapter for any local git repository with a "
                                   "code2lora-static or code2lora-evo checkpoint, in the PEFT "
                                   "layout, with a code2lora.json sidecar. With an Evo adapter, "
                                   "--update DIR folds the commits made since into its state.")
    a.add_argument("repo", nargs="?", metavar="REPO_PATH", help="local git repository")
    a.add_argument("--checkpoint", help="checkpoint written by 'train --method code2lora-*'")
    a.add_argument("--out", help="adapter directory to write")
    a.add_argument("--update", metavar="DIR", help="an Evo adapter directory to bring up to date")
    a.add_argument("--model", default=None,
                   help="base model (default: the checkpoint's; another one is an error)")
    a.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a.set_defaults(func=cmd_adapt)

    d = sub.add_parser("demo", help="build a small benchmark, evaluate, write the leaderboard",
                       description="The main job on a built-in default, offline: mine the test "
                                   "suites of installed packages (numpy, networkx, pyarrow, ...) "
                                   "and this project's git history (or --repos), evaluate every "
                                   "method that needs no training on the test splits, and write "
                                   "the leaderboard.")
    d.add_argument("--repos", default=None,
                   help="repository list (default: installed packages' test suites + this project)")
    d.add_argument("--out", default="build/demo")
    d.add_argument("--methods", default=None,
                   help="comma-separated methods (default: pretrained and rag-bm25)")
    d.add_argument("--limit", type=_positive_int, default=None, help="tasks per split (default 10)")
    d.add_argument("--tf-limit", type=int, default=None,
                   help="tasks per split scored teacher-forced with pretrained (default 30; 0: "
                        "none)")
    d.add_argument("--max-input-tokens", type=_positive_int, default=None,
                   help="left-truncate inputs to this many tokens (default 1024, to stay within "
                        "minutes on a CPU; the benchmark protocol is 4096)")
    d.add_argument("--batch-size", type=_positive_int, default=None,
                   help="prompts per batch (default: 8 on CUDA, 1 on CPU)")
    _add_model_args(d)
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("stats", help="print statistics of a built benchmark",
                       description="Print split sizes, family and target-type mix, lengths "
                                   "and filter counts of a built benchmark directory.")
    s.add_argument("dir", help="benchmark directory written by 'build'")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.set_defaults(func=cmd_stats)

    v = sub.add_parser("verify", help="check every file of a benchmark against its manifest",
                       description="Hash every file of a built benchmark and compare it with "
                                   "manifest.json: missing, changed and unlisted tables are "
                                   "reported. evaluate, score and stats do this before use "
                                   "(hashes cached by file size and times).")
    v.add_argument("dir", help="benchmark directory written by 'build'")
    v.add_argument("--no-cache", action="store_true",
                   help="hash every file again, ignoring cached hashes")
    v.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, FileNotFoundError) as exc:
        if args.debug:
            raise
        message = exc.args[0] if exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
