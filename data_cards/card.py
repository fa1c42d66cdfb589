"""Render the dataset card (the output directory's README.md) from a build."""
from __future__ import annotations

from pathlib import Path
from string import Template

import pyarrow.parquet as pq

from repopeftbench import __version__
from repopeftbench.io import canonical_json, sha256_text
from repopeftbench.schema import FILE_SPLITS, SCHEMA_VERSION, SINGLE_FILE_TABLES, table_path
from repopeftbench.stats import compute_stats, format_stats, markdown_table

TEMPLATES = Path(__file__).parent / "templates"


def yaml_header(split_sizes: dict[str, dict[str, int]]) -> str:
    """Hugging Face dataset-card YAML declaring one config per table (non-empty splits only)."""
    lines = ["license: other", "pretty_name: RepoPeftBench", "task_categories:",
             "- text-generation", "tags:", "- code", "- python", "configs:"]
    first = True
    for table, sizes in split_sizes.items():
        present = [s for s in FILE_SPLITS if sizes.get(s)]
        if not present:
            continue
        lines.append(f"- config_name: {table}")
        if first:
            lines.append("  default: true")
            first = False
        lines.append("  data_files:")
        for split in present:
            lines += [f"  - split: {split}", f"    path: {table}/{split}.parquet"]
    for table in SINGLE_FILE_TABLES:
        if table == "context" and not split_sizes.get("context", {}).get("context"):
            continue
        lines += [f"- config_name: {table}", "  data_files:", f"  - split: {table}",
                  f"    path: {table_path(table)}"]
    return "\n".join(lines)


def _sources(out_dir: Path) -> str:
    repos = pq.read_table(out_dir / "repos.parquet").to_pylist()
    rows = [[r["repo_id"], r["url"], r["license"] or "unknown",
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


def render_card(out_dir: Path, config: dict, report: dict) -> str:
    """The card of a build, from its configuration (``BuildConfig.to_dict()``) and report."""
    template = Template((TEMPLATES / "dataset_card.md").read_text())
    st, ev = config["static"], config["evolution"]
    sizes = dict(report["split_sizes"])
    sizes["context"] = {"context": report.get("n_context_files", 0)}
    return template.substitute(
        yaml_header=yaml_header(sizes), n_repos_ok=report["n_repos_ok"],
        version=__version__, schema_version=SCHEMA_VERSION,
        config_hash=sha256_text(canonical_json(config))[:16],
        tracks=", ".join(sorted(config["tracks"])),
        cutoff_note=f", {config['cutoff']}" if config["cutoff"] else "; no cutoff was set",
        statistics=format_stats(compute_stats(out_dir)), sources=_sources(out_dir),
        failures=_failures(report), max_target_chars=st["max_target_chars"],
        cap_per_function=st["cap_per_function"], cap_per_file=st["cap_per_file"],
        cap_per_repo=st["cap_per_repo"], prefix_max_lines=st["prefix_max_lines"],
        max_file_bytes=st["max_file_bytes"], eval_cap=ev["eval_cap_per_commit"],
        train_cap=ev["train_cap_per_file"], train_min=ev["train_min_target_chars"],
        max_diff_bytes=ev["max_diff_bytes"], n_context_files=report.get("n_context_files", 0),
        context_max_bytes=config["context"]["max_file_bytes"])
