"""Running a method on a benchmark split: training, predictions, scores, run directory, cache
(checkpoints are ``checkpoints``'s, the text report and run comparisons ``report``'s).

``evaluate`` writes ``predictions.jsonl`` and ``results.json`` into the run directory.
Predictions are cached per task under the run key (method configuration, checkpoint,
model and its revision, decoding protocol, device kind, seed, dataset hash, config,
split), appended as they are made, so an interrupted evaluation resumes and a larger
``--limit`` reuses what a smaller one computed. Requests of several repositories are
generated together, so a backend can mix their adapters in one batch.

Nothing at module level imports torch: ``score`` and ``compare`` run without it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from repopeftbench.dataset import Benchmark
from repopeftbench.errors import UserError
from repopeftbench.io import (canonical_json, read_json_file, sha256_text, write_json,
                              write_jsonl)
from repopeftbench.metrics import clean_prediction
from repopeftbench.results import DatasetRef, ModelRef, Results, headline_metric

from .backends import backend_record
from .backends.base import GenerationConfig, Request, adapter_key, adapter_nbytes
from .models import cache_root
from .registry import Method, RunContext, get_method, parse_options
from .scoring import (TF_METRICS, ScoredTask, paired_comparison, score_tasks, summarise,
                      tf_scored_tasks)
from .submission import read_submission
# what the harness used to hold, from the modules that hold it now (kept importable)
from .checkpoints import (CHECKPOINT_FILE, checkpoint_fingerprint, checkpoint_record,  # noqa: F401
                          model_revision, package_versions, read_checkpoint)
from .report import (SAMPLES_FILE, compare_runs, format_audit, format_scores,  # noqa: F401
                     read_samples, read_scored)

GENERATE_CHUNK = 256   # requests generated together (and then cached) at a time
# ... and at most this many bytes of distinct in-memory adapters among them: an audit's
# leave-one-out mean of a per-layer head is of full rank (about 650 MB on
# Qwen2.5-Coder-0.5B's top 8 layers, by its shapes), and 256 tasks span a dozen repositories or more
PENDING_ADAPTER_BYTES = 1 << 30


SCORINGS = ("generate", "teacher-forced")


def _valid_record(rec) -> bool:
    """A cache line: a generated prediction, or a teacher-forced score."""
    if not isinstance(rec, dict) or not isinstance(rec.get("task_id"), str):
        return False
    if "tf" in rec:
        return isinstance(rec["tf"], dict) and all(isinstance(rec["tf"].get(m), (int, float))
                                                   for m in TF_METRICS)
    return isinstance(rec.get("prediction"), str)


def _read_cache(path: Path) -> dict[str, dict]:
    """Finished predictions of a cache file. A broken line (cut by an interruption,
    even inside a UTF-8 character, or damaged) is ignored with a warning: its task is
    predicted again."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    broken = 0
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
            ok = _valid_record(rec)
        except (UnicodeDecodeError, ValueError, RecursionError):
            ok = False
        if ok:
            out[rec["task_id"]] = rec
        else:
            broken += 1
    if broken:
        print(f"warning: {path}: {broken} broken cache line(s) ignored; their tasks are "
              f"predicted again", file=sys.stderr)
    return out


def _open_cache_for_append(path: Path):
    """The cache file, opened to append whole lines (a line an interruption cut is ended
    first, so the next record does not run into it)."""
    fh = open(path, "ab")
    if fh.tell():
        with open(path, "rb") as r:
            r.seek(-1, os.SEEK_END)
            if r.read(1) != b"\n":
                fh.write(b"\n")
    return fh


# ----------------------------------------------------------------------- checkpoints

def _make_method(method: str, context: RunContext, options, checkpoint: Path | None = None) -> Method:
    """The method with its options; with a checkpoint, the options it was trained with,
    overridden by the ones given (a method may refuse an override, e.g. another encoder)."""
    cls = get_method(method)
    if checkpoint is not None and not isinstance(options, cls.Options):
        trained = read_checkpoint(checkpoint, method).get("options", {})
        valid = {f.name for f in dataclasses.fields(cls.Options)}
        given = dict(options) if isinstance(options, dict) else dict(
            item.split("=", 1) if "=" in item else (item, None) for item in options or [])
        if None in given.values():
            raise UserError(f"--option takes KEY=VALUE, got {next(k for k, v in given.items() if v is None)!r}")
        options = {**{k: v for k, v in trained.items() if k in valid}, **given}
    opts = options if isinstance(options, cls.Options) else parse_options(cls, options)
    return cls(context, opts)


def train(method: str, dataset_dir: str | Path, track: str, out_dir: str | Path,
          model: str = "smollm2", options: list[str] | dict | None = None, device: str = "cpu",
          seed: int = 0, backend: str = "hf", progress: bool = True,
          backend_options: list[str] | dict | None = None) -> Path:
    """Train a method once on the benchmark's ``track`` training tables; save it to
    ``out_dir`` (a checkpoint directory that ``evaluate --checkpoint`` reads)."""
    bench = Benchmark(dataset_dir)
    out = Path(out_dir)
    context = RunContext(model_name=model, device=device, seed=seed, artifacts_dir=out,
                         backend_name=backend, progress=progress, backend_options=backend_options)
    obj = _make_method(method, context, options)
    if not obj.trainable:
        raise UserError(f"method {method!r} does not train; evaluate it directly")
    obj.fit(bench, track)
    obj.save(out)
    write_json(out / CHECKPOINT_FILE, checkpoint_record(obj, track, model, bench))
    return out


def _prepare(obj: Method, bench: Benchmark, track: str, model: str, checkpoint: Path | None,
             run_dir: Path) -> Path | None:
    """Load or train a trainable method; returns its checkpoint directory."""
    if not obj.trainable:
        if checkpoint is not None:
            raise UserError(f"method {obj.name!r} does not train; --checkpoint does not apply")
        return None
    if checkpoint is not None:
        record = read_checkpoint(checkpoint, obj.name)
        if type(obj).uses_model and record["model"]["revision"] != model_revision(model):
            raise UserError(f"{checkpoint}: trained on model {record['model']['name']!r}, "
                            f"evaluated with {model!r}")
        obj.load(checkpoint)
        return checkpoint
    ckpt = run_dir / "artifacts" / "checkpoint"
    want = checkpoint_record(obj, track, model, bench)
    if (ckpt / CHECKPOINT_FILE).exists() and read_checkpoint(ckpt) == want:
        obj.load(ckpt)  # trained by an earlier, interrupted run with the same configuration
        return ckpt
    obj.context.artifacts_dir = ckpt
    obj.fit(bench, track)
    obj.save(ckpt)
    write_json(ckpt / CHECKPOINT_FILE, want)
    return ckpt


def evaluate(dataset_dir: str | Path, config: str, split: str, method: str, model: str,
             out_dir: str | Path, limit: int | None = None, device: str = "cpu",
             generation: GenerationConfig = GenerationConfig(),
             method_options: list[str] | dict | None = None, checkpoint: str | Path | None = None,
             seed: int = 0, backend: str = "hf", progress: bool = True,
             n_boot: int = 1000, sample: str = "hash", scoring: str = "generate",
             shard: tuple[int, int] | None = None,
             backend_options: list[str] | dict | None = None,
             repos: int | None = None) -> Results:
    """Run ``method`` on ``config/split`` of a built benchmark; write and return results.
    ``limit`` and ``sample`` choose a fixed sample of tasks, of the split's first ``repos``
    repositories when given (``Benchmark.tasks``).
    ``scoring="teacher-forced"`` scores each target in one forward pass (``tf_em``,
    ``tf_token_acc``, ``tf_logprob``) instead of generating it. ``shard=(i, n)`` predicts
    the tasks of shard i of n only (``shard_repos``: whole repositories, so an adapter
    loads once), with the method prepared on every task, as the unsharded run; ``merge``
    combines the n run directories into the unsharded run's results."""
    run = _Evaluation(dataset_dir, config, split, method, model, out_dir, limit, device,
                      generation, method_options, checkpoint, seed, backend, progress, n_boot,
                      sample, scoring, shard, backend_options=backend_options, repos=repos)
    run.n_new = run.predict_missing(run.sinks)
    return run.finish()


@dataclasses.dataclass
class RunSpec:
    """One method of ``evaluate_together``: its name, options, checkpoint and run directory."""
    method: str
    out_dir: str | Path
    options: list[str] | dict | None = None
    checkpoint: str | Path | None = None


def evaluate_together(dataset_dir: str | Path, config: str, split: str, runs: list[RunSpec],
                      model: str, limit: int | None = None, device: str = "cpu",
                      generation: GenerationConfig = GenerationConfig(), seed: int = 0,
                      backend: str = "hf", progress: bool = True, n_boot: int = 1000,
                      sample: str = "hash", scoring: str = "teacher-forced",
                      shard: tuple[int, int] | None = None,
                      backend_options: list[str] | dict | None = None,
                      repos: int | None = None) -> list[Results]:
    """Several methods on the same tasks with one model: each run directory, cache and
    results record is the one ``evaluate`` of that method alone gives, but teacher-forced,
    every configuration of a task (each method, each audit mode) is scored in one pass, so
    the layers below the adapters run once for all of them (generation predicts one
    method after another, sharing the loaded model). A run's ``wall_time_s`` is the joint
    run's."""
    if not runs:
        raise UserError("evaluate_together needs at least one run")
    shared: list = []            # one backend for every method: the model loads once
    evals = [_Evaluation(dataset_dir, config, split, r.method, model, r.out_dir, limit, device,
                         generation, r.options, r.checkpoint, seed, backend, progress, n_boot,
                         sample, scoring, shard, shared_backend=shared,
                         backend_options=backend_options, repos=repos) for r in runs]
    outs = [str(Path(e.out).resolve()) for e in evals]
    if len(set(outs)) != len(outs):
        raise UserError("evaluate_together: every run needs its own run directory")
    if scoring == "teacher-forced":
        n_new = _predict_missing_joint([(e, e.sinks) for e in evals])
        for e, n in zip(evals, n_new):
            e.n_new = n
    else:
        for e in evals:
            e.n_new = e.predict_missing(e.sinks)
    return [e.finish() for e in evals]


class _Evaluation:
    """One method on one split: its tasks, run key, prediction cache and audit sinks
    (``__init__``), the predictions it lacks (``predict_missing``), and its run
    directory and results (``finish``)."""

    def __init__(self, dataset_dir, config, split, method, model, out_dir, limit, device,
                 generation, method_options, checkpoint, seed, backend, progress, n_boot,
                 sample, scoring, shard, shared_backend: list | None = None,
                 backend_options: list[str] | dict | None = None, repos: int | None = None):
        if scoring not in SCORINGS:
            raise UserError(f"unknown scoring {scoring!r}; choose from {', '.join(SCORINGS)}")
        self.t0 = time.time()
        self.bench = bench = Benchmark(dataset_dir)
        self.config, self.split, self.method, self.model = config, split, method, model
        self.limit, self.device, self.generation = limit, device, generation
        self.seed, self.n_boot, self.sample, self.scoring = seed, n_boot, sample, scoring
        self.shard, self.repos = shard, repos or None
        self.backend_name, self.backend_options = backend, backend_options
        self.every = bench.tasks(config, split, limit=limit, sample=sample, max_repos=repos)
        self.tasks = self.every
        if shard is not None:
            mine = shard_repos(self.every, *shard)
            self.tasks = [t for t in self.every if t["repo_id"] in mine]
        self.out = out = Path(out_dir)
        context = RunContext(model_name=model, device=device, generation=generation, seed=seed,
                             artifacts_dir=out / "artifacts", backend_name=backend,
                             progress=progress, backend_options=backend_options)
        if shared_backend is not None:          # evaluate_together: the model loads once
            if not shared_backend:
                shared_backend.append(context.backend())
            context._backend = shared_backend[0]
        self.ckpt_path = Path(checkpoint) if checkpoint is not None else None
        self.obj = obj = _make_method(method, context, method_options, self.ckpt_path)
        obj.check_split(config, split)
        check_input_budget(obj, generation)
        uses_model = type(obj).uses_model
        self.model_ref = ModelRef(model if uses_model else None,
                                  model_revision(model) if uses_model else None)
        self.gen = generation.to_dict() if uses_model else None
        if scoring != "generate" and not uses_model:
            raise UserError(f"method {method!r} uses no model: teacher-forced scoring does "
                            f"not apply (use --scoring generate)")
        self.run_key = self._key(obj, self.ckpt_path)
        self.cache_path = cache_root() / "predictions" / f"{self.run_key}.jsonl"
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        self.cached = _read_cache(self.cache_path)
        # audit modes whose predictions are another method's: that run's cache (and key)
        self.shared_modes: dict[str, Path] = {}
        for mode in type(obj).audit_modes[1:]:
            twin = obj.audit_equivalent(mode)
            if twin is not None:
                cls = get_method(twin[0])
                twin_obj = cls(context, cls.Options(**twin[1]))
                self.shared_modes[mode] = self.cache_path.with_name(
                    f"{self._key(twin_obj, None)}.jsonl")
        self.ready: list[Path | None] = []   # the checkpoint, once the method can predict
        self.auditing = bool(type(obj).audit_modes) and getattr(obj.options, "audit", True)
        self.sinks: list[Sink] = [(None, self.cache_path, self.cached)]
        if self.auditing and scoring == "teacher-forced":
            # every audit configuration of a task scored in one pass (lower layers shared)
            self.sinks = [(m, path, _read_cache(path) if i else self.cached) for i, (m, path)
                          in enumerate(_audit_caches(obj, self.every, self.cache_path, self.run_key,
                                                        self.shared_modes))]
        self.n_new = 0

    def _key(self, obj: Method, ckpt_path: Path | None) -> str:
        """The run key of method ``obj`` (with this checkpoint) on this run's tasks, model,
        generation settings, backend and scoring: its prediction cache's name."""
        uses_model = type(obj).uses_model
        key_fields = {"method": obj.config(), "model": self.model_ref.__dict__,
                      "generation": self.gen,
                      "device_kind": ("cuda" if self.device.startswith("cuda") else self.device)
                      if uses_model else None,
                      "dataset_sha256": self.bench.sha256, "config": self.config,
                      "split": self.split, "seed": self.seed,
                      "checkpoint": checkpoint_fingerprint(ckpt_path) if ckpt_path else None}
        if obj.trainable and ckpt_path is None:
            key_fields["trained_in_run"] = str(self.out.resolve())
        if self.backend_name != "hf" and uses_model:
            key_fields["backend"] = self.backend_name    # another engine's numerics: its own cache
        if self.scoring != "generate":
            key_fields["scoring"] = self.scoring
        return sha256_text(canonical_json(key_fields))[:20]

    def ensure_ready(self) -> None:
        if not self.ready:
            self.ready.append(_prepare(self.obj, self.bench, self.config, self.model,
                                       self.ckpt_path, self.out))
            self.obj.setup(self.bench, self.config)
            self.obj.attach(self.bench)
            self.obj.prepare(self.every)          # a shard's method sees the whole task set

    def missing(self, sinks: list[Sink]) -> dict[str, list[dict]]:
        """The tasks some sink lacks, by repository."""
        for mode, path, have in sinks:
            if mode in self.shared_modes:      # another run of this process may have filled it
                have.update(_read_cache(path))
        by_repo: dict[str, list[dict]] = {}
        for t in self.tasks:
            if any(t["task_id"] not in have for _, _, have in sinks):
                by_repo.setdefault(t["repo_id"], []).append(t)
        return by_repo

    def label(self, sinks: list[Sink]) -> str:
        mode = sinks[0][0]
        return self.method if mode is None else \
            f"{self.method} [{'+'.join(str(m) for m, _, _ in sinks)}]"

    def predict_missing(self, sinks: list[Sink]) -> int:
        """Predict (or score) every task some sink lacks, for every sink at once."""
        by_repo = self.missing(sinks)
        if by_repo:
            self.ensure_ready()
            _predict_all([(self.obj, m, p, h) for m, p, h in sinks], by_repo,
                         self.label(sinks), self.scoring)
        return sum(len(v) for v in by_repo.values())

    def finish(self) -> Results:
        """The audit (scoring what its modes lack), the run directory and results.json."""
        obj, bench, tasks, scoring, out = self.obj, self.bench, self.tasks, self.scoring, self.out
        used_ckpt = self.ready[0] if self.ready else self.ckpt_path
        header = {"dataset_sha256": bench.sha256, "config": self.config, "split": self.split,
                  "method": self.method, "model": self.model_ref.name, "scoring": scoring}
        audit = _audit(obj, tasks, self.cache_path, self.run_key, out, self.predict_missing,
                       self.ensure_ready, self.n_boot, scoring, self.every, header,
                       self.shared_modes) \
            if self.auditing else None
        if self.ready and self.ready[0] is not None:
            used_ckpt = self.ready[0]
        cached = self.cached
        if scoring == "generate":
            write_jsonl(out / "predictions.jsonl", [header] + [cached[t["task_id"]] for t in tasks])
        scored = score_records(tasks, cached, scoring)
        write_jsonl(out / SAMPLES_FILE, [header] + [s.sample() for s in scored])
        shard = self.shard
        results = Results(
            run_key=self.run_key,
            dataset=DatasetRef(str(bench.dir), bench.sha256, self.config, self.split, self.limit,
                               bench.manifest.get("config", {}).get("profile"),
                               self.sample if self.limit is not None else "hash", self.repos),
            method=obj.config(), model=self.model_ref, scores=summarise(scored, n_boot=self.n_boot),
            seed=self.seed, scoring=scoring, packages=package_versions(),
            device=self.device if type(obj).uses_model else None, generation=self.gen,
            backend=backend_record(self.backend_name, self.backend_options)
            if type(obj).uses_model else None,
            wall_time_s=round(time.time() - self.t0, 2), n_predicted_now=self.n_new,
            checkpoint=str(used_ckpt) if used_ckpt else None, audit=audit,
            shard={"index": shard[0], "count": shard[1],
                   "repos": sorted({t["repo_id"] for t in tasks}),
                   "n_tasks_all": len(self.every), "n_boot": self.n_boot}
            if shard is not None else None)
        results.save(out)
        return results


def _predict_missing_joint(parts: list[tuple["_Evaluation", list[Sink]]]) -> list[int]:
    """Teacher-forced: every task any run's sink lacks, scored for every sink of every run
    in one pass; the number of tasks each run lacked."""
    entries, counts, union = [], [], {}
    for ev, sinks in parts:
        by_repo = ev.missing(sinks)
        counts.append(sum(len(v) for v in by_repo.values()))
        for repo, group in by_repo.items():
            for t in group:
                union.setdefault(repo, {})[t["task_id"]] = t
    if not union:
        return counts
    seen: set[Path] = set()     # a cache two runs share (an audit mode's twin) is filled once
    for ev, sinks in parts:
        ev.ensure_ready()
        entries += [(ev.obj, m, p, h) for m, p, h in sinks if not (p in seen or seen.add(p))]
    order = {t["task_id"]: i for i, t in enumerate(parts[0][0].tasks)}
    by_repo = {r: sorted(ts.values(), key=lambda t: order.get(t["task_id"], len(order)))
               for r, ts in union.items()}
    _predict_all(entries, by_repo, " + ".join(ev.label(s) for ev, s in parts), "teacher-forced")
    return counts


def _jsonl(path: Path) -> tuple[dict, list[dict]]:
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return json.loads(lines[0]), [json.loads(x) for x in lines[1:]]


def merge(run_dirs: list[str | Path], out_dir: str | Path) -> Results:
    """One run from the run directories of the n shards of an evaluation (``evaluate
    --shard I/N``): their predictions, samples and audit files joined in the unsharded
    order, and the results computed from them, equal to the unsharded run's (but for the
    wall time, the sum of the shards'). Refuses shards of different runs, a shard given
    twice, a missing one and an unsharded run."""
    dirs = [Path(d) for d in run_dirs]
    parts = []
    for d in dirs:
        path = d / "results.json"
        if not path.exists():
            raise UserError(f"{d}: not a run directory (results.json is missing)")
        res = Results.from_dict(read_json_file(path, "results"), str(path))
        if res.shard is None:
            raise UserError(f"{path}: not a shard (evaluate --shard I/N writes shards)")
        parts.append((d, res))
    first = parts[0][1]
    for d, res in parts[1:]:
        for what, a, b in (("run key (method, options, model, protocol, checkpoint, split)",
                            res.run_key, first.run_key), ("scoring", res.scoring, first.scoring),
                           ("dataset", res.dataset, first.dataset)):
            if a != b:
                raise UserError(f"{d}: a shard of another run than {parts[0][0]} (its {what} "
                                f"differs); merge the shards of one evaluation")
    count = first.shard["count"]
    seen = sorted(res.shard["index"] for _, res in parts)
    if seen != list(range(count)) or any(res.shard["count"] != count for _, res in parts):
        raise UserError(f"shards {seen} of {count} given: merge needs each of 0..{count - 1} once")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    repo_of: dict[str, str] = {}

    def joined(name: str) -> tuple[dict, list[dict]] | None:
        """A file of every shard, its rows in the unsharded order: a run's tasks come by
        repository in id order, and each repository is whole in one shard, in its order."""
        files = [d / name for d, _ in parts]
        if not all(f.exists() for f in files):
            return None
        header, rows = _jsonl(files[0])
        for f in files[1:]:
            rows += _jsonl(f)[1]
        rows.sort(key=lambda r: r.get("repo_id") or repo_of[r["task_id"]])   # stable
        return header, rows

    samples = joined(SAMPLES_FILE)
    if samples is None:
        raise UserError(f"a shard lacks {SAMPLES_FILE}; run it again with this version")
    header, rows = samples
    if len(rows) != first.shard["n_tasks_all"]:
        raise UserError(f"the shards hold {len(rows)} tasks, the run has "
                        f"{first.shard['n_tasks_all']}")
    repo_of.update({r["task_id"]: r["repo_id"] for r in rows})
    write_jsonl(out / SAMPLES_FILE, [header] + rows)
    scored = [ScoredTask.from_sample(r) for r in rows]
    n_boot = first.shard.get("n_boot", 1000)
    audit, modes = None, []
    if first.audit is not None:
        modes = first.audit["modes"]
        by_mode = {modes[0]: scored}
        for mode in modes[1:]:
            got = joined(f"samples-{mode}.jsonl")
            if got is None:
                raise UserError(f"a shard lacks samples-{mode}.jsonl")
            write_jsonl(out / f"samples-{mode}.jsonl", [got[0]] + got[1])
            by_mode[mode] = [ScoredTask.from_sample(r) for r in got[1]]
        info = {k: v for k, v in first.audit.items()
                if k not in ("metric", "modes") and k not in modes and "_minus_" not in k}
        audit = audit_summary(modes, by_mode, first.scoring, n_boot, info)
    for name in ["predictions.jsonl"] + [f"predictions-{m}.jsonl" for m in modes[1:]]:
        got = joined(name)
        if got is not None:
            write_jsonl(out / name, [got[0]] + got[1])
    results = dataclasses.replace(
        first, scores=summarise(scored, n_boot=n_boot), audit=audit, shard=None,
        wall_time_s=round(sum(r.wall_time_s for _, r in parts), 2),
        n_predicted_now=sum(r.n_predicted_now for _, r in parts))
    results.save(out)
    return results


def shard_repos(tasks: list[dict], index: int, count: int) -> set[str]:
    """The repositories of shard ``index`` of ``count``: whole repositories, dealt largest
    first to the shard with the fewest tasks (ties: the lower shard), so shards are even
    and the deal depends on the task set only."""
    if not (count >= 1 and 0 <= index < count):
        raise UserError(f"shard {index}/{count}: give I/N with 0 <= I < N")
    sizes: dict[str, int] = {}
    for t in tasks:
        sizes[t["repo_id"]] = sizes.get(t["repo_id"], 0) + 1
    load = [0] * count
    owner: dict[str, int] = {}
    for repo in sorted(sizes, key=lambda r: (-sizes[r], r)):
        k = min(range(count), key=lambda j: (load[j], j))
        owner[repo] = k
        load[k] += sizes[repo]
    return {r for r, k in owner.items() if k == index}


def check_input_budget(obj: Method, generation: GenerationConfig) -> None:
    """A trained method is scored on inputs of the length it learned on: its training
    sequences (``max_seq_len``) and the evaluation's input budget (``max_input_tokens``)
    must agree, or the method is scored on inputs it never saw (it learned at 256 tokens
    and was scored at 4,096, before this check)."""
    trained = getattr(obj.options, "max_seq_len", None) if obj.trainable else None
    if trained is not None and trained != generation.max_input_tokens:
        raise UserError(f"method {obj.name!r} trains on sequences of {trained} tokens "
                        f"(max_seq_len) but would be scored on inputs of "
                        f"{generation.max_input_tokens}: give --max-input-tokens {trained}, or "
                        f"train with --option max_seq_len={generation.max_input_tokens}")


def score_records(tasks: list[dict], records: dict[str, dict], scoring: str) -> list[ScoredTask]:
    """Every task scored from its cache record (a prediction, or teacher-forced scores)."""
    if scoring == "teacher-forced":
        return tf_scored_tasks(tasks, records)
    return score_tasks(tasks, {t["task_id"]: records[t["task_id"]]["prediction"] for t in tasks})


Sink = tuple  # (audit mode or None, cache file, its records by task id): where results go


def _audit_scope(obj: Method, tasks: list[dict]) -> str:
    """The key of what an audit's replacements depend on: the set of the method's audit
    items (``Method.audit_item``) over the evaluated tasks (by default the task ids, whose
    key is that of the task set)."""
    return sha256_text("\n".join(sorted({obj.audit_item(t) for t in tasks})))[:12]


def _audit_caches(obj: Method, tasks: list[dict], cache_path: Path, run_key: str,
                  shared: dict[str, Path] | None = None) -> list[tuple[str, Path]]:
    """Each audit mode and its cache file: the run's own for the first mode; for the others
    one per audit scope, since a replacement adapter (the mean, a shuffle) depends on every
    item of the evaluated tasks (and on nothing else of them); ``shared``: modes whose
    predictions are another method's, with that method's cache."""
    modes, shared = type(obj).audit_modes, shared or {}
    scope = _audit_scope(obj, tasks)
    return [(mode, cache_path if i == 0 else shared.get(mode) or cache_path.with_name(
        f"{run_key}-{mode}{obj.audit_tag(mode)}-{scope}.jsonl"))
        for i, mode in enumerate(modes)]


def _audit(obj: Method, tasks: list[dict], cache_path: Path, run_key: str, out: Path,
           predict_missing, ensure_ready, n_boot: int, scoring: str = "generate",
           every: list[dict] | None = None, header: dict | None = None,
           shared: dict[str, Path] | None = None) -> dict:
    """Score the same tasks with every audit mode's adapters (e.g. own, mean, shuffled):
    em micro and macro with repository-bootstrap CIs, the paired difference of the own
    adapter over each replacement, and the method's extra figures (adapter cosines)."""
    modes = type(obj).audit_modes
    every = every if every is not None else tasks
    scope = _audit_scope(obj, every)
    scored = {}
    for i, (mode, path) in enumerate(_audit_caches(obj, every, cache_path, run_key, shared)):
        have = _read_cache(path)
        if i > 0:
            predict_missing([(mode, path, have)])
            if scoring == "generate":
                write_jsonl(out / f"predictions-{mode}.jsonl",
                            [{"mode": mode}] + [have[t["task_id"]] for t in tasks])
        scored[mode] = score_records(tasks, have, scoring)
        if i > 0:
            write_jsonl(out / f"samples-{mode}.jsonl",
                        [{**(header or {}), "mode": mode, "scoring": scoring}]
                        + [x.sample() for x in scored[mode]])
    if len(modes) > 1:
        obj.set_audit_mode(modes[0])
    rev = obj.audit_tag("info")
    info_path = cache_path.with_name(f"{run_key}-audit{rev}-{scope}.json")
    if info_path.exists():
        info = json.loads(info_path.read_text())
    else:
        ensure_ready()
        info = obj.audit_info()
        write_json(info_path, info)
    return audit_summary(modes, scored, scoring, n_boot, info)


def audit_summary(modes: tuple[str, ...] | list[str], scored: dict[str, list[ScoredTask]],
                  scoring: str, n_boot: int, info: dict) -> dict:
    """The audit record from every mode's scored tasks (the same tasks, in order): each
    mode's headline metric with CIs, the paired gains of the first mode over the others,
    and the method's extra figures."""
    audit: dict = {"metric": headline_metric(scoring), "modes": list(modes)}
    for mode in modes:
        summary = summarise(scored[mode], n_boot=n_boot)["metrics"]
        main = summary[headline_metric(scoring)]
        audit[mode] = {k: main[k] for k in ("micro", "micro_ci", "macro", "macro_ci")}
        if scoring == "teacher-forced":
            audit[mode]["metrics"] = summary
    for mode in modes[1:]:
        audit[f"{modes[0]}_minus_{mode}"] = paired_comparison(scored[mode], scored[modes[0]],
                                                              metric=headline_metric(scoring), n_boot=n_boot)
        if scoring == "teacher-forced":
            audit[f"{modes[0]}_minus_{mode}_tf_logprob"] = paired_comparison(
                scored[mode], scored[modes[0]], metric="tf_logprob", n_boot=n_boot)
    audit.update(info)
    return audit


def _predict_all(entries: list[tuple[Method, str | None, Path, dict]], by_repo: dict[str, list[dict]],
                 method: str, scoring: str = "generate") -> None:
    """Ask each entry's method (under its audit mode) for every repository's predictions;
    generate (or score) pending requests in chunks that mix repositories, every entry's
    request of a task together (entries of several methods share one backend); append
    each finished result to its entry's cache file."""
    if scoring == "generate" and len(entries) != 1:
        raise ValueError("generation predicts one audit mode at a time")
    sinks = [(mode, path, have) for _, mode, path, have in entries]
    backend = lambda: entries[0][0].context.backend()  # noqa: E731 (a model only if asked)
    pending: list[tuple[dict, list[Request]]] = []
    held: dict[str, int] = {}          # the distinct in-memory adapters pending, their bytes
    files = [_open_cache_for_append(path) for _, path, _ in sinks]
    try:
        def write(c: int, rec: dict) -> None:
            """Each finished task goes to the cache at once: an interruption loses at
            most the rows being decoded."""
            have = sinks[c][2]
            if rec["task_id"] in have and len(sinks) > 1:
                return                         # scored again only with the other modes
            have[rec["task_id"]] = rec
            files[c].write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
            files[c].flush()

        def record(c: int, task: dict, raw: str) -> None:
            write(c, {"task_id": task["task_id"], "raw": raw,
                      "prediction": clean_prediction(raw, task["target"])})

        def record_tf(c: int, task: dict, score) -> None:
            write(c, {"task_id": task["task_id"], "tf": score.metrics(),
                      "n_target_tokens": score.n_tokens})

        def flush() -> None:
            if pending and scoring == "teacher-forced":
                backend().score_configurations(
                    [[reqs[c] for _, reqs in pending] for c in range(len(sinks))],
                    [t["target"] for t, _ in pending], desc=f"{method}: teacher-forced",
                    on_result=lambda c, i, sc: record_tf(c, pending[i][0], sc))
            elif pending:
                backend().generate([reqs[0] for _, reqs in pending],
                                               desc=f"{method}: generating",
                                               on_result=lambda i, raw: record(0, pending[i][0], raw))
            pending.clear()
            held.clear()
            for fh in files:
                fh.flush()
                os.fsync(fh.fileno())

        for repo_id in sorted(by_repo):
            group = by_repo[repo_id]
            answers = []
            for obj, mode, _, _ in entries:
                if mode is not None:
                    obj.set_audit_mode(mode)
                outs = obj.predict(repo_id, group)
                if len(outs) != len(group):
                    raise RuntimeError(f"method {obj.name!r} returned {len(outs)} predictions for "
                                       f"{len(group)} tasks of {repo_id}")
                answers.append(outs)
            for k, task in enumerate(group):
                items = [outs[k] for outs in answers]
                for item in items:
                    if isinstance(item, str) and scoring == "teacher-forced":
                        raise UserError(f"method {method!r} answered task {task['task_id']} with "
                                        f"a string, not a model request: teacher-forced scoring "
                                        f"needs requests (use --scoring generate)")
                    if not isinstance(item, (str, Request)):
                        raise TypeError(f"method {method!r} returned {type(item).__name__} for "
                                        f"task {task['task_id']}; expected str or Request")
                if isinstance(items[0], str):
                    record(0, task, items[0])
                else:
                    pending.append((task, items))
                    for item in items:
                        key = adapter_key(item.adapter)
                        if key is not None and key not in held:
                            held[key] = adapter_nbytes(item.adapter)
            if len(pending) >= GENERATE_CHUNK or sum(held.values()) >= PENDING_ADAPTER_BYTES:
                flush()
        flush()
    finally:
        for fh in files:
            fh.close()


def score_predictions(dataset_dir: str | Path, config: str, split: str, predictions: str | Path,
                      out_dir: str | Path | None = None, n_boot: int = 1000) -> Results:
    """Validate a submitted predictions file and score it (nothing in it is executed)."""
    bench = Benchmark(dataset_dir)
    tasks = bench.tasks(config, split)
    sub = read_submission(predictions, {t["task_id"] for t in tasks}, bench.sha256, config, split)
    scored = score_tasks(tasks, sub.predictions)
    results = Results(
        run_key="submission:" + sha256_text(Path(predictions).read_text(encoding="utf-8"))[:20],
        dataset=DatasetRef(str(bench.dir), bench.sha256, config, split, None,
                           bench.manifest.get("config", {}).get("profile")),
        method={"name": str(sub.header.get("method") or Path(predictions).stem)},
        model=ModelRef(sub.header.get("model")), scores=summarise(scored, n_boot=n_boot),
        packages=package_versions(), submission=str(predictions))
    if out_dir is not None:
        results.save(out_dir)
    return results


