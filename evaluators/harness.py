"""Running a method on a benchmark split: predictions, scores, run directory, cache.

Predictions are cached per task under the run key (method configuration, model and its
revision, decoding protocol, device kind, dataset hash, config, split), appended as each
repository finishes, so an interrupted evaluation resumes and a larger ``--limit``
reuses what a smaller one computed.
"""
from __future__ import annotations

import json
import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from repopeftbench import __version__
from repopeftbench.dataset import Benchmark
from repopeftbench.io import canonical_json, sha256_text, write_json, write_jsonl
from repopeftbench.metrics import clean_prediction

from .generation import GenerationConfig
from .models import ALIASES, cache_root
from .registry import RunContext, get_method
from .scoring import score_tasks, summarise
from .submission import read_submission


def _pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def model_revision(name: str) -> str:
    """A stable identity of the model weights without hashing gigabytes."""
    if name in ALIASES:
        dists = [m.replace("_", "-") for m in ALIASES[name].packages]
        return ",".join(f"{d}=={_pkg(d)}" for d in dists)
    path = Path(name)
    if path.is_dir():
        parts = [(path / "config.json").read_text() if (path / "config.json").exists() else ""]
        parts += [f"{f.name}:{f.stat().st_size}" for f in sorted(path.iterdir())
                  if f.suffix in (".safetensors", ".bin", ".gguf")]
        return "sha256:" + sha256_text("\n".join(parts))[:16]
    return name


def package_versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), "repopeftbench": __version__,
            **{p: _pkg(p) for p in ("torch", "transformers", "peft", "pyarrow", "tree-sitter")}}


def _read_cache(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption
            out[rec["task_id"]] = rec
    return out


def evaluate(dataset_dir: str | Path, config: str, split: str, method: str, model: str,
             out_dir: str | Path, limit: int | None = None, device: str = "cpu",
             generation: GenerationConfig = GenerationConfig(), method_options: dict | None = None,
             progress: bool = True, n_boot: int = 1000) -> dict:
    """Run ``method`` on ``config/split`` of a built benchmark; write and return results."""
    t0 = time.time()
    bench = Benchmark(dataset_dir)
    tasks = bench.tasks(config, split, limit=limit)
    context = RunContext(model_name=model, device=device, generation=generation, progress=progress)
    method_obj = get_method(method)(context, **(method_options or {}))
    uses_model = type(method_obj).uses_model
    model_info = {"name": model if uses_model else None,
                  "revision": model_revision(model) if uses_model else None}
    key_fields = {"method": method_obj.config(), "model": model_info,
                  "generation": generation.to_dict() if uses_model else None,
                  "device_kind": ("cuda" if device.startswith("cuda") else device) if uses_model else None,
                  "dataset_sha256": bench.sha256, "config": config, "split": split}
    run_key = sha256_text(canonical_json(key_fields))[:20]
    cache_path = cache_root() / "predictions" / f"{run_key}.jsonl"
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cached = _read_cache(cache_path)

    by_repo: dict[str, list[dict]] = {}
    for t in tasks:
        if t["task_id"] not in cached:
            by_repo.setdefault(t["repo_id"], []).append(t)
    n_new = sum(len(v) for v in by_repo.values())
    if n_new:
        method_obj.fit(bench)
        with open(cache_path, "a", encoding="utf-8") as cache:
            for repo_id in sorted(by_repo):
                group = by_repo[repo_id]
                raws = method_obj.predict(repo_id, group)
                if len(raws) != len(group):
                    raise RuntimeError(f"method {method!r} returned {len(raws)} predictions for "
                                       f"{len(group)} tasks of {repo_id}")
                for t, raw in zip(group, raws):
                    rec = {"task_id": t["task_id"], "raw": raw,
                           "prediction": clean_prediction(raw, t["target"])}
                    cached[t["task_id"]] = rec
                    cache.write(json.dumps(rec, ensure_ascii=False) + "\n")
                cache.flush()
                os.fsync(cache.fileno())

    out = Path(out_dir)
    header = {"dataset_sha256": bench.sha256, "config": config, "split": split,
              "method": method, "model": model_info["name"]}
    write_jsonl(out / "predictions.jsonl", [header] + [cached[t["task_id"]] for t in tasks])
    scored = score_tasks(tasks, {t["task_id"]: cached[t["task_id"]]["prediction"] for t in tasks})
    results = {
        "run_key": run_key, "dataset": {"dir": str(bench.dir), "manifest_sha256": bench.sha256,
                                        "config": config, "split": split, "limit": limit},
        "method": method_obj.config(), "model": model_info,
        "generation": key_fields["generation"], "device": device if uses_model else None,
        "packages": package_versions(), "n_predicted_now": n_new,
        "wall_time_s": round(time.time() - t0, 2), "scores": summarise(scored, n_boot=n_boot),
    }
    write_json(out / "results.json", results)
    return results


def score_predictions(dataset_dir: str | Path, config: str, split: str, predictions: str | Path,
                      out_dir: str | Path | None = None, n_boot: int = 1000) -> dict:
    """Validate a submitted predictions file and score it (nothing in it is executed)."""
    bench = Benchmark(dataset_dir)
    tasks = bench.tasks(config, split)
    sub = read_submission(predictions, {t["task_id"] for t in tasks}, bench.sha256, config, split)
    scored = score_tasks(tasks, sub.predictions)
    results = {
        "run_key": "submission:" + sha256_text(Path(predictions).read_text(encoding="utf-8"))[:20],
        "dataset": {"dir": str(bench.dir), "manifest_sha256": bench.sha256, "config": config,
                    "split": split, "limit": None},
        "method": {"name": str(sub.header.get("method") or Path(predictions).stem)},
        "model": {"name": sub.header.get("model"), "revision": None}, "generation": None,
        "device": None, "packages": package_versions(), "submission": str(predictions),
        "scores": summarise(scored, n_boot=n_boot),
    }
    if out_dir is not None:
        write_json(Path(out_dir) / "results.json", results)
    return results


def format_scores(results: dict) -> str:
    from repopeftbench.stats import markdown_table

    s = results["scores"]
    d = results["dataset"]
    rows = [[m, f"{v['micro']:.1f}", f"[{v['micro_ci'][0]:.1f}, {v['micro_ci'][1]:.1f}]",
             f"{v['macro']:.1f}", f"[{v['macro_ci'][0]:.1f}, {v['macro_ci'][1]:.1f}]"]
            for m, v in s["metrics"].items()]
    head = (f"{results['method']['name']} on {d['config']}/{d['split']}: {s['n_tasks']} tasks, "
            f"{s['n_repos']} repositories")
    fam = [[k, v["n"], f"{v['em']:.1f}", f"{v['paper_em']:.1f}"] for k, v in s["by_assertion_type"].items()]
    typ = [[k, v["n"], f"{v['em']:.1f}", f"{v['paper_em']:.1f}"] for k, v in s["by_target_type"].items()]
    return "\n\n".join([head, markdown_table(["metric (%)", "micro", "95% CI", "macro", "95% CI"], rows),
                        markdown_table(["family", "n", "em", "paper_em"], fam),
                        markdown_table(["target type", "n", "em", "paper_em"], typ)]) + "\n"




def read_scored(run_dir: str | Path, dataset_dir: str | Path):
    """Scored tasks of a run directory (its predictions.jsonl against the benchmark)."""
    bench = Benchmark(dataset_dir)
    path = Path(run_dir) / "predictions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    tasks = bench.tasks(header["config"], header["split"])
    sub = read_submission(path, {t["task_id"] for t in tasks} & {
        json.loads(x)["task_id"] for x in lines[1:] if x.strip()}, bench.sha256,
        header["config"], header["split"])
    tasks = [t for t in tasks if t["task_id"] in sub.predictions]
    return score_tasks(tasks, sub.predictions)
