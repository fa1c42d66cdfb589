"""Per-repository mining results -> the published tables, card and manifest.

Everything here is deterministic: repositories are taken in repo_id order, rows in a
fixed order within each, splits are pure functions of ids, seeds and commit order, and
no time or path of the build machine is written. Evolution tables are streamed, one
repository at a time, so memory does not grow with the size of the benchmark.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from data_cards.card import render_card
from repopeftbench import __version__
from repopeftbench.io import (SplitWriter, atomic_write_text, read_parquet, sha256_file,
                              write_json, write_jsonl, write_parquet)
from repopeftbench.schema import (COMMITS, CONTEXT, EVOLUTION, FILE_SPLITS, REPOS, SCHEMA_VERSION,
                                  STATIC, table_from_rows, table_path)
from repopeftbench.splits import chronological_split, cross_repo_split, in_repo_split

from .acquire import source_kind
from .config import BuildConfig
from .evolution_miner import eval_cap, smart_cap
from .job import CONTEXT_PART, RepoResult, paths
from .knowledge import LABELS, TextIndex, repository_index
from .knowledge import label as knowledge_label
from .repolist import BadRow, RepoSpec


@dataclass
class BuildSummary:
    out_dir: Path
    n_repos: int
    n_ok: int
    n_failed: int
    split_sizes: dict[str, dict[str, int]]   # table -> split -> rows
    filter_counts: dict[str, int]
    failures: list[dict]
    published: bool = False              # swapped into the output folder
    failures_path: Path | None = None    # where failures.jsonl was written


def _repository_index(spec: RepoSpec, results: dict[str, RepoResult], work_root: Path
                      ) -> TextIndex | None:
    """The repository's non-test files (its context part), for knowledge-source labels."""
    part = results[spec.repo_id].parts.get(CONTEXT_PART)
    if part is None or not part.ok:
        return None
    table = read_parquet(paths(work_root, CONTEXT_PART, spec.repo_id)["rows"])
    return repository_index(table.column("content").to_pylist())


def _static_rows(spec: RepoSpec, split: str, config: BuildConfig, work_root: Path,
                 index: TextIndex | None, labels: Counter) -> list[dict]:
    rows = read_parquet(paths(work_root, "static", spec.repo_id)["rows"]).to_pylist()
    ir = in_repo_split([r["task_id"] for r in rows], config.seed, config.in_repo_fractions)
    for r in rows:
        r["cross_repo_split"] = split
        r["in_repo_split"] = ir[r["task_id"]]
        r["knowledge_source"] = knowledge_label(r["target"], r["prefix"], index)
        labels[r["knowledge_source"]] += 1
    return rows


_TASK_COLUMNS_WITHOUT_PREFIX = [n for n in EVOLUTION.names
                                if n not in ("prefix", "cross_repo_split", "in_repo_split",
                                             "knowledge_source")]


def _evolution_rows(spec: RepoSpec, split: str, config: BuildConfig, work_root: Path,
                    counts: Counter, commit_out: SplitWriter, task_out: SplitWriter,
                    index: TextIndex | None = None, labels: Counter | None = None) -> int:
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

    def label(row: dict) -> None:
        row["knowledge_source"] = knowledge_label(row["target"], row["prefix"], index)
        if labels is not None:
            labels[row["knowledge_source"]] += 1
    return _stream(p["rows"], keep, split, split_name, task_out, EVOLUTION, label)


def _stream(path: Path, keep: dict[int, str], split: str, split_name, out: SplitWriter, schema,
            transform=None) -> int:
    """Copy the rows of ``path`` whose index is in ``keep`` (index -> in-repo split) into the
    split files, one batch at a time (commits carry large diffs, tasks whole-file prefixes)."""
    offset = n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=512):
        rows = [i for i in range(batch.num_rows) if offset + i in keep]
        grouped: dict[str, list[dict]] = {}
        for i, r in zip(rows, batch.take(rows).to_pylist() if rows else []):
            ir = keep[offset + i]
            r["cross_repo_split"], r["in_repo_split"] = split, ir
            if transform is not None:
                transform(r)
            grouped.setdefault(split_name(ir), []).append(r)
        for name in FILE_SPLITS:
            if name in grouped:
                out.write(name, table_from_rows(grouped[name], schema))
                n += len(grouped[name])
        offset += batch.num_rows
    return n


def _write_context(specs: list[RepoSpec], results: dict[str, RepoResult], work_root: Path,
                   out_dir: Path) -> int:
    """The context table: every mined repository's files, in (repo_id, path) order, streamed
    one repository at a time."""
    out = SplitWriter(out_dir, CONTEXT, [CONTEXT_PART])
    try:
        for spec in sorted(specs, key=lambda s: s.repo_id):
            part = results[spec.repo_id].parts.get(CONTEXT_PART)
            if part is None or not part.ok:
                continue
            for batch in pq.ParquetFile(paths(work_root, CONTEXT_PART, spec.repo_id)["rows"]
                                        ).iter_batches(batch_size=256):
                out.write(CONTEXT_PART, table_from_rows(batch.to_pylist(), CONTEXT))
    except BaseException:
        out.abort()
        raise
    return out.close()[CONTEXT_PART]


def _repo_row(spec: RepoSpec, result: RepoResult, split: str, tracks: list[str]) -> dict:
    info, parts = result.info, result.parts
    st, evo = parts.get("static"), parts.get("evolution")
    ok = any(parts[t].ok for t in tracks)
    reasons = "; ".join(f"{t}: {parts[t].reason}" for t in tracks if not parts[t].ok)
    return {
        "repo_id": spec.repo_id, "url": spec.url, "source": source_kind(spec),
        "commit_sha": info.snapshot if info else None,
        "commit_timestamp": st.commit_timestamp if st else None, "license": spec.license,
        "stars": spec.stars, "created_at": info.created_at if info else spec.created_at,
        "cross_repo_split": split, "status": "ok" if ok else "failed",
        "failure_reason": reasons or None, "n_test_files": (st.n_test_files or 0) if st else 0,
        "n_tasks": st.n_tasks if st else 0, "n_commits": (evo.n_commits or 0) if evo else 0,
        "n_kept_commits": (evo.n_kept_commits or 0) if evo else 0,
        "n_evolution_tasks": 0}  # filled in after the caps


_REPORT_FIELDS = ("status", "reason", "n_tasks", "n_test_files", "n_candidates", "n_commits",
                  "n_kept_commits", "filter_counts", "file_skips")


def assemble(specs: list[RepoSpec], bad_rows: list[BadRow], results: dict[str, RepoResult],
             config: BuildConfig, work_root: Path, out_dir: Path, repos_file: Path) -> BuildSummary:
    tracks = list(config.tracks)
    static_rows: list[dict] = []
    evo_tasks: dict[str, int] = {}
    if "evolution" in tracks:
        commit_out = SplitWriter(out_dir / "commits", COMMITS, FILE_SPLITS)
        task_out = SplitWriter(out_dir / "evolution", EVOLUTION, FILE_SPLITS)
    repo_rows: list[dict] = []
    per_repo: list[dict] = []
    counts: dict[str, Counter] = {t: Counter() for t in (*tracks, CONTEXT_PART)}
    labels: dict[str, Counter] = {"static": Counter(), "evolution": Counter()}
    failures: list[dict] = [{"repo_id": b.repo_id, "source": b.source, "track": None,
                             "stage": "repo_list", "reason": b.reason} for b in bad_rows]
    for spec in sorted(specs, key=lambda s: s.repo_id):
        result = results[spec.repo_id]
        split = cross_repo_split(spec.repo_id, config.seed, config.cr_val_fraction,
                                 config.cr_test_fraction, spec.split,
                                 bool(result.info and result.info.is_ood))
        parts = result.parts
        for name, part in parts.items():
            counts[name].update(part.filter_counts)
            if not part.ok and name in tracks:
                failures.append({"repo_id": spec.repo_id, "source": spec.source, "track": name,
                                 "stage": "mine", "reason": part.reason})
        index = None
        if any(t in tracks and parts[t].ok for t in ("static", "evolution")):
            index = _repository_index(spec, results, work_root)
        if "static" in tracks and parts["static"].ok:
            static_rows.extend(_static_rows(spec, split, config, work_root, index,
                                            labels["static"]))
        if "evolution" in tracks and parts["evolution"].ok:
            try:
                evo_tasks[spec.repo_id] = _evolution_rows(spec, split, config, work_root,
                                                          counts["evolution"], commit_out, task_out,
                                                          index, labels["evolution"])
            except BaseException:
                commit_out.abort()  # leave the previous split files as they were
                task_out.abort()
                raise
        repo_rows.append(_repo_row(spec, result, split, tracks))
        per_repo.append({"repo_id": spec.repo_id, "cross_repo_split": split, "tracks": {
            name: {k: getattr(part, k) for k in _REPORT_FIELDS if getattr(part, k) is not None}
            for name, part in parts.items()}})

    for row in repo_rows:
        row["n_evolution_tasks"] = evo_tasks.get(row["repo_id"], 0)

    written: list[str] = []
    split_sizes: dict[str, dict[str, int]] = {}
    writers: list[tuple[str, SplitWriter]] = []
    if "static" in tracks:
        static_rows.sort(key=lambda r: (r["repo_id"], r["test_file"], r["byte_offset"]))
        static_out = SplitWriter(out_dir / "static", STATIC, FILE_SPLITS)
        for name, (cr, ir) in FILE_SPLITS.items():
            part_rows = [r for r in static_rows if r["cross_repo_split"] == cr
                         and (ir is None or r["in_repo_split"] == ir)]
            static_out.write(name, table_from_rows(part_rows, STATIC))
        writers.append(("static", static_out))
    if "evolution" in tracks:
        writers += [("commits", commit_out), ("evolution", task_out)]
    for table, writer in writers:
        split_sizes[table] = writer.close()
        written += [table_path(table, s) for s, n in split_sizes[table].items() if n]
    n_context = _write_context(specs, results, work_root, out_dir)
    if n_context:
        written.append(table_path("context"))
    write_parquet(out_dir / table_path("repos"), table_from_rows(repo_rows, REPOS))
    write_jsonl(out_dir / "failures.jsonl", failures)
    n_ok = sum(r["status"] == "ok" for r in repo_rows)
    report = {"n_repos_listed": len(specs) + len(bad_rows), "n_repos_ok": n_ok,
              "n_failures": len(failures), "tracks": tracks, "split_sizes": split_sizes,
              "n_context_files": n_context,
              "filter_counts": {t: dict(sorted(c.items())) for t, c in counts.items()},
              "knowledge_sources": {t: {k: labels[t][k] for k in LABELS} for t in tracks},
              "repos": per_repo}
    write_json(out_dir / "build_report.json", report)
    written += [table_path("repos"), "failures.jsonl", "build_report.json"]
    hashes = {rel: sha256_file(out_dir / rel) for rel in written}  # each file read once
    atomic_write_text(out_dir / "README.md", render_card(out_dir, config.to_dict(), report, hashes))
    hashes["README.md"] = sha256_file(out_dir / "README.md")
    manifest = {"tool": "repopeftbench", "version": __version__, "schema_version": SCHEMA_VERSION,
                "config": config.to_dict(), "config_hash": config.hash(),
                "repo_list_sha256": sha256_file(repos_file),
                "files": dict(sorted(hashes.items()))}
    write_json(out_dir / "manifest.json", manifest)
    merged: Counter = Counter()
    for name in tracks:
        merged.update(counts[name])
    return BuildSummary(out_dir=out_dir, n_repos=len(specs) + len(bad_rows), n_ok=n_ok,
                        n_failed=len(failures), split_sizes=split_sizes,
                        filter_counts=dict(sorted(merged.items())), failures=failures)
