"""Render the dataset card (the output directory's README.md) from a build."""
from __future__ import annotations

import hashlib
from pathlib import Path
from string import Template

import pyarrow.parquet as pq

from repopeftbench import __version__
from repopeftbench.io import canonical_json, sha256_text
from repopeftbench.schema import (COLUMN_DOCS, FILE_SPLITS, SCHEMA_VERSION, SINGLE_FILE_TABLES,
                                  TABLES, table_path)
from repopeftbench.stats import Markdown, compute_stats, format_stats, markdown_table

TEMPLATES = Path(__file__).parent / "templates"


def content_version(file_hashes: dict[str, str], paths: list[str]) -> str:
    """A version string that changes whenever the files' content does.

    ``datasets`` caches a local folder under (folder name, config, version); without a
    content-derived version, loading another benchmark in a folder of the same name, or a
    rebuilt one, would return the cached rows of the first.
    """
    h = hashlib.sha256()
    for rel in paths:
        h.update(f"{rel}\0{file_hashes[rel]}\n".encode())
    return f"{SCHEMA_VERSION.split('.')[0]}.0.{int(h.hexdigest()[:12], 16)}"


def yaml_header(file_hashes: dict[str, str], split_sizes: dict[str, dict[str, int]]) -> str:
    """Hugging Face dataset-card YAML declaring one config per table (non-empty splits only),
    each with a version derived from its files' SHA-256 (``file_hashes``: path -> hash)."""
    lines = ["license: other", "pretty_name: RepoPeftBench", "task_categories:",
             "- text-generation", "tags:", "- code", "- python", "configs:"]
    configs: list[tuple[str, list[tuple[str, str]]]] = []
    for table, sizes in split_sizes.items():
        if table in SINGLE_FILE_TABLES:
            continue
        present = [(s, table_path(table, s)) for s in FILE_SPLITS if sizes.get(s)]
        if present:
            configs.append((table, present))
    for table in SINGLE_FILE_TABLES:
        if table_path(table) in file_hashes:
            configs.append((table, [(table, table_path(table))]))
    for i, (table, files) in enumerate(configs):
        lines.append(f"- config_name: {table}")
        if i == 0:
            lines.append("  default: true")
        lines.append(f"  version: {content_version(file_hashes, [p for _, p in files])}")
        lines.append("  data_files:")
        for split, path in files:
            lines += [f"  - split: {split}", f"    path: {path}"]
    return "\n".join(lines)


def _public_url(url: str) -> str:
    """A remote URL as it is; a local path is not shown (it only means something on the
    build machine)."""
    return url if "://" in url or url.startswith("git@") else "(local copy)"


def columns_section() -> str:
    """One table per Parquet table: every column, its type and meaning."""
    parts = []
    for table, schema in TABLES.items():
        docs = COLUMN_DOCS[table]
        parts.append(f"`{table}`:\n\n" + markdown_table(
            ["column", "type", "meaning"],
            [[Markdown(f"`{f.name}`"), str(f.type), docs[f.name]] for f in schema]))
    return "\n\n".join(parts)


def _sources(out_dir: Path) -> str:
    repos = pq.read_table(out_dir / "repos.parquet").to_pylist()
    rows = [[r["repo_id"], _public_url(r["url"]), r["license"] or "unknown",
             r["stars"] if r["stars"] is not None else "-", (r["commit_sha"] or "-")[:12],
             r["cross_repo_split"], r["n_tasks"], r["n_kept_commits"], r["n_evolution_tasks"],
             r["status"]] for r in repos]
    return markdown_table(["repo", "url", "licence", "stars", "commit", "split", "static tasks",
                           "kept commits", "evolution tasks", "status"], rows)


def _failures(report: dict) -> str:
    if report["n_failures"] == 0:
        return "All listed repositories were mined."
    return (f"{report['n_failures']} repository/track pairs or list rows gave no tasks; "
            "`failures.jsonl` names each with its reason.")


def render_card(out_dir: Path, config: dict, report: dict, file_hashes: dict[str, str]) -> str:
    """The card of a build, from its configuration (``BuildConfig.to_dict()``), report and
    the SHA-256 of the files written so far (path -> hash, as in the manifest)."""
    template = Template((TEMPLATES / "dataset_card.md").read_text())
    st, ev = config["static"], config["evolution"]
    return template.substitute(
        yaml_header=yaml_header(file_hashes, report["split_sizes"]), n_repos_ok=report["n_repos_ok"],
        version=__version__, schema_version=SCHEMA_VERSION,
        config_hash=sha256_text(canonical_json(config))[:16],
        tracks=", ".join(sorted(config["tracks"])), profile=config.get("profile", "default"),
        cutoff_note=f", {config['cutoff']}" if config["cutoff"] else "; no cutoff was set",
        statistics=format_stats(compute_stats(out_dir)), columns=columns_section(), sources=_sources(out_dir),
        failures=_failures(report), max_target_chars=st["max_target_chars"],
        cap_per_function=st["cap_per_function"], cap_per_file=st["cap_per_file"],
        cap_per_repo=st["cap_per_repo"], prefix_max_lines=st["prefix_max_lines"],
        max_file_bytes=st["max_file_bytes"], eval_cap=ev["eval_cap_per_commit"],
        train_cap=ev["train_cap_per_file"], train_min=ev["train_min_target_chars"],
        max_diff_bytes=ev["max_diff_bytes"], n_context_files=report.get("n_context_files", 0),
        context_max_bytes=config["context"]["max_file_bytes"])
