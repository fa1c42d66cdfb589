"""Per-repository mining results -> the published tables, card and manifest.

Everything here is deterministic: repositories are taken in repo_id order, rows in a
fixed order within each, splits are pure functions of ids, seeds and commit order, and
no time or path of the build machine is written. Evolution tables are streamed, one
repository at a time, so memory does not grow with the size of the benchmark.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from miners.evolution_miner import eval_cap, smart_cap

from . import __version__
from .io import (SplitWriter, atomic_write_text, read_parquet, sha256_file, write_json,
                 write_jsonl, write_parquet)
from .repolist import BadRow, RepoSpec
from .schema import COMMITS, EVOLUTION, FILE_SPLITS, REPOS, SCHEMA_VERSION, STATIC, table_from_rows
from .splits import chronological_split, cross_repo_split, in_repo_split
from .worker import paths

if TYPE_CHECKING:
    from .build import BuildConfig, BuildSummary


def _static_rows(spec: RepoSpec, split: str, config: "BuildConfig", work_root: Path) -> list[dict]:
    rows = read_parquet(paths(work_root, "static", spec.repo_id)["rows"]).to_pylist()
    ir = in_repo_split([r["task_id"] for r in rows], config.seed, config.in_repo_fractions)
    for r in rows:
        r["cross_repo_split"] = split
        r["in_repo_split"] = ir[r["task_id"]]
    return rows


_TASK_COLUMNS_WITHOUT_PREFIX = [n for n in EVOLUTION.names
                                if n not in ("prefix", "cross_repo_split", "in_repo_split")]


def _evolution_rows(spec: RepoSpec, split: str, config: "BuildConfig", work_root: Path,
                    counts: Counter, commit_out: SplitWriter, task_out: SplitWriter) -> int:
    """Stream one repository's commits and capped tasks into the split writers.

    The caps are decided on the task table without its prefixes; prefixes are then read
    batch by batch for the kept rows only, so memory stays bounded by the batch size.
    Rows keep the miner's order (commit, then file, then position). Returns the task count.
    """
    p = paths(work_root, "evolution", spec.repo_id)
    commits = pq.read_table(p["commits"], columns=["commit_sha", "commit_index"]).to_pylist()
    if [c["commit_index"] for c in commits] != sorted(c["commit_index"] for c in commits):
        raise ValueError(f"{p['commits']}: commits are not in history order")
    splits = chronological_split(len(commits), config.in_repo_fractions)
    for c, ir in zip(commits, splits):
        c["in_repo_split"] = ir
    file_split = {ir: name for name, (cr, ir) in FILE_SPLITS.items() if cr == split and ir}
    whole = next(name for name, (cr, ir) in FILE_SPLITS.items() if cr == split)

    def split_name(ir: str) -> str:
        return file_split.get(ir, whole) if split == "train" else whole

    _stream(p["commits"], dict(enumerate(splits)), split, split_name, commit_out, COMMITS)

    light = pq.read_table(p["rows"], columns=_TASK_COLUMNS_WITHOUT_PREFIX).to_pylist()
    by_commit: dict[str, list[int]] = {}
    for i, t in enumerate(light):
        t["_row"] = i
        by_commit.setdefault(t["commit_sha"], []).append(i)
    ev = config.evolution
    keep: dict[int, str] = {}  # row -> in-repo split
    for c in commits:
        mine = [light[i] for i in by_commit.get(c["commit_sha"], [])]
        ir = c["in_repo_split"]
        if split == "train" and ir == "train":
            kept = smart_cap(mine, ev.train_cap_per_file, ev.train_min_target_chars, counts)
        else:
            kept = eval_cap(mine, ev.eval_cap_per_commit, counts)
        keep.update((t["_row"], ir) for t in kept)
    return _stream(p["rows"], keep, split, split_name, task_out, EVOLUTION)


def _stream(path: Path, keep: dict[int, str], split: str, split_name, out: SplitWriter, schema) -> int:
    """Copy the rows of ``path`` whose index is in ``keep`` (index -> in-repo split) into the
    split files, one batch at a time (commits carry large diffs, tasks whole-file prefixes)."""
    offset = n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=512):
        rows = [i for i in range(batch.num_rows) if offset + i in keep]
        grouped: dict[str, list[dict]] = {}
        for i, r in zip(rows, batch.take(rows).to_pylist() if rows else []):
            ir = keep[offset + i]
            r["cross_repo_split"], r["in_repo_split"] = split, ir
            grouped.setdefault(split_name(ir), []).append(r)
        for name in FILE_SPLITS:
            if name in grouped:
                out.write(name, table_from_rows(grouped[name], schema))
                n += len(grouped[name])
        offset += batch.num_rows
    return n


def assemble(specs: list[RepoSpec], bad_rows: list[BadRow], results: dict[str, dict],
             config: "BuildConfig", work_root: Path, out_dir: Path, repos_file: Path) -> "BuildSummary":
    from data_cards.card import render_card

    from .build import BuildSummary

    tracks = list(config.tracks)
    static_rows: list[dict] = []
    evo_tasks: dict[str, int] = {}
    if "evolution" in tracks:
        commit_out = SplitWriter(out_dir / "commits", COMMITS, FILE_SPLITS)
        task_out = SplitWriter(out_dir / "evolution", EVOLUTION, FILE_SPLITS)
    repo_rows: list[dict] = []
    per_repo: list[dict] = []
    counts: dict[str, Counter] = {t: Counter() for t in tracks}
    failures: list[dict] = [{"repo_id": b.repo_id, "source": b.source, "track": None,
                             "stage": "repo_list", "reason": b.reason} for b in bad_rows]
    for spec in sorted(specs, key=lambda s: s.repo_id):
        result = results[spec.repo_id]
        info = result["info"] or {}
        split = cross_repo_split(spec.repo_id, config.seed, config.cr_val_fraction,
                                 config.cr_test_fraction, spec.split, bool(info.get("is_ood")))
        metas = result["tracks"]
        for track in tracks:
            meta = metas[track]
            counts[track].update(meta.get("filter_counts", {}))
            if meta["status"] != "ok":
                failures.append({"repo_id": spec.repo_id, "source": spec.source, "track": track,
                                 "stage": "mine", "reason": meta["reason"]})
        if "static" in tracks and metas["static"]["status"] == "ok":
            static_rows.extend(_static_rows(spec, split, config, work_root))
        if "evolution" in tracks and metas["evolution"]["status"] == "ok":
            try:
                evo_tasks[spec.repo_id] = _evolution_rows(spec, split, config, work_root,
                                                          counts["evolution"], commit_out, task_out)
            except BaseException:
                commit_out.abort()  # leave the previous split files as they were
                task_out.abort()
                raise
        st, evo = metas.get("static", {}), metas.get("evolution", {})
        ok = any(m["status"] == "ok" for m in metas.values())
        reasons = "; ".join(f"{t}: {m['reason']}" for t, m in metas.items() if m["status"] != "ok")
        repo_rows.append({
            "repo_id": spec.repo_id, "url": spec.url, "commit_sha": info.get("snapshot"),
            "commit_timestamp": st.get("commit_timestamp"), "license": spec.license,
            "stars": spec.stars, "created_at": info.get("created_at", spec.created_at),
            "cross_repo_split": split, "status": "ok" if ok else "failed",
            "failure_reason": reasons or None, "n_test_files": st.get("n_test_files", 0),
            "n_tasks": st.get("n_tasks", 0), "n_commits": evo.get("n_commits", 0),
            "n_kept_commits": evo.get("n_kept_commits", 0),
            "n_evolution_tasks": 0})  # filled in below, after the caps
        per_repo.append({"repo_id": spec.repo_id, "cross_repo_split": split, "tracks": {
            t: {k: m.get(k) for k in ("status", "reason", "n_tasks", "n_test_files", "n_candidates",
                                      "n_commits", "n_kept_commits", "filter_counts", "file_skips")
                if k in m} for t, m in metas.items()}})

    for row in repo_rows:
        row["n_evolution_tasks"] = evo_tasks.get(row["repo_id"], 0)

    written: list[str] = []
    split_sizes: dict[str, dict[str, int]] = {}
    writers: list[tuple[str, SplitWriter]] = []
    if "static" in tracks:
        static_rows.sort(key=lambda r: (r["repo_id"], r["test_file"], r["byte_offset"]))
        static_out = SplitWriter(out_dir / "static", STATIC, FILE_SPLITS)
        for name, (cr, ir) in FILE_SPLITS.items():
            part = [r for r in static_rows if r["cross_repo_split"] == cr and (ir is None or r["in_repo_split"] == ir)]
            static_out.write(name, table_from_rows(part, STATIC))
        writers.append(("static", static_out))
    if "evolution" in tracks:
        writers += [("commits", commit_out), ("evolution", task_out)]
    for table, writer in writers:
        split_sizes[table] = writer.close()
        written += [f"{table}/{s}.parquet" for s, n in split_sizes[table].items() if n]
    write_parquet(out_dir / "repos.parquet", table_from_rows(repo_rows, REPOS))
    write_jsonl(out_dir / "failures.jsonl", failures)
    n_ok = sum(r["status"] == "ok" for r in repo_rows)
    report = {"n_repos_listed": len(specs) + len(bad_rows), "n_repos_ok": n_ok,
              "n_failures": len(failures), "tracks": tracks, "split_sizes": split_sizes,
              "filter_counts": {t: dict(sorted(c.items())) for t, c in counts.items()},
              "repos": per_repo}
    write_json(out_dir / "build_report.json", report)
    written += ["repos.parquet", "failures.jsonl", "build_report.json"]
    atomic_write_text(out_dir / "README.md", render_card(out_dir, config, report))
    written.append("README.md")
    manifest = {"tool": "repopeftbench", "version": __version__, "schema_version": SCHEMA_VERSION,
                "config": config.to_dict(), "config_hash": config.hash(),
                "repo_list_sha256": sha256_file(repos_file),
                "files": {rel: sha256_file(out_dir / rel) for rel in sorted(written)}}
    write_json(out_dir / "manifest.json", manifest)
    merged = Counter()
    for c in counts.values():
        merged.update(c)
    return BuildSummary(out_dir=out_dir, n_repos=len(specs) + len(bad_rows), n_ok=n_ok,
                        n_failed=len(failures), split_sizes=split_sizes,
                        filter_counts=dict(sorted(merged.items())), failures=failures)
