"""Statistics of a built benchmark directory (``repopeftbench stats`` and the data card)."""
from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from .reasons import describe
from .schema import ASSERTION_TYPES, FILE_SPLITS, TARGET_TYPES

_LEX = re.compile(r"\w+|[^\w\s]")


def lexical_tokens(text: str) -> int:
    """Identifier/number/punctuation count: a tokenizer-free proxy for length."""
    return len(_LEX.findall(text))


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "mean": 0.0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"min": ordered[0], "median": statistics.median(ordered), "p95": p95,
            "max": ordered[-1], "mean": round(sum(ordered) / len(ordered), 2)}


def _read_splits(out_dir: Path, table: str, columns: list[str]) -> tuple[dict[str, int], dict[str, list]]:
    sizes: dict[str, int] = {}
    merged: dict[str, list] = {c: [] for c in columns}
    for split in FILE_SPLITS:
        path = out_dir / table / f"{split}.parquet"
        if not path.exists():
            continue
        data = pq.read_table(path, columns=columns).to_pydict()
        sizes[split] = len(data[columns[0]])
        for c in columns:
            merged[c].extend(data[c])
    return sizes, merged


KNOWLEDGE_SOURCES = ("prefix", "repository", "none")


def _task_stats(out_dir: Path, table: str) -> dict:
    sizes, t = _read_splits(out_dir, table, ["repo_id", "assertion_type", "target_type", "prefix",
                                            "target", "knowledge_source"])
    families, ttypes, per_repo = Counter(t["assertion_type"]), Counter(t["target_type"]), Counter(t["repo_id"])
    sources = Counter(t["knowledge_source"])
    return {
        "knowledge_sources": {k: sources.get(k, 0) for k in KNOWLEDGE_SOURCES},
        "n_tasks": sum(sizes.values()), "n_repos": len(per_repo), "split_sizes": sizes,
        "families": {f: families.get(f, 0) for f in ASSERTION_TYPES},
        "target_types": {x: ttypes.get(x, 0) for x in TARGET_TYPES},
        "tasks_per_repo": _quantiles(list(per_repo.values())),
        "prefix_lines": _quantiles([p.count("\n") + 1 for p in t["prefix"]]),
        "prefix_lexical_tokens": _quantiles([lexical_tokens(p) for p in t["prefix"]]),
        "target_chars": _quantiles([len(x) for x in t["target"]]),
        "target_lexical_tokens": _quantiles([lexical_tokens(x) for x in t["target"]]),
    }


def _commit_stats(out_dir: Path) -> dict:
    sizes, c = _read_splits(out_dir, "commits", ["repo_id", "commit_sha", "production_code_diff",
                                                 "n_added_assertions", "n_modified_assertions"])
    _, e = _read_splits(out_dir, "evolution", ["commit_sha", "event"])
    per_repo = Counter(c["repo_id"])
    tasks_per_commit = Counter(e["commit_sha"])
    repos = pq.read_table(out_dir / "repos.parquet", columns=["n_commits", "n_kept_commits"]).to_pydict()
    ratios = [k / n for n, k in zip(repos["n_commits"], repos["n_kept_commits"]) if n]
    return {
        "n_commits": sum(sizes.values()), "split_sizes": sizes,
        "commits_per_repo": _quantiles(list(per_repo.values())),
        "kept_ratio": _quantiles([round(r, 3) for r in ratios]),
        "tasks_per_commit": _quantiles([tasks_per_commit.get(s, 0) for s in c["commit_sha"]]),
        "diff_bytes": _quantiles([len(d.encode()) for d in c["production_code_diff"]]),
        "events": dict(Counter(e["event"])),
        "added_assertions": sum(c["n_added_assertions"]),
        "modified_assertions": sum(c["n_modified_assertions"]),
    }


def compute_stats(out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    report_path = out_dir / "build_report.json"
    if not report_path.exists():
        raise FileNotFoundError(f"{out_dir}: no build_report.json; is this a built benchmark?")
    report = json.loads(report_path.read_text())
    tracks = report.get("tracks", ["static"])
    return {
        "tracks": tracks,
        "static": _task_stats(out_dir, "static") if "static" in tracks else None,
        "evolution": _task_stats(out_dir, "evolution") if "evolution" in tracks else None,
        "commits": _commit_stats(out_dir) if "evolution" in tracks else None,
        "filter_counts": report.get("filter_counts", {}),
        "n_repos_listed": report.get("n_repos_listed"), "n_repos_ok": report.get("n_repos_ok"),
        "n_failures": report.get("n_failures"),
    }


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


_MD_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\",
               "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]"}


class Markdown(str):
    """A cell that is markup of ours (a code span), not text to escape."""


def md_escape(value: object) -> str:
    """A table cell's text, shown as written: no HTML, links, emphasis or column breaks
    from a user-supplied name; line breaks become spaces."""
    if isinstance(value, Markdown):
        return str(value)
    text = " ".join(str(value).splitlines())
    return "".join(_MD_SPECIAL.get(ch, ch) for ch in text)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; every cell is escaped (``md_escape``)."""
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _lengths(stats: dict, names: tuple[str, ...]) -> str:
    return markdown_table(["measure", "min", "median", "mean", "p95", "max"],
                          [[n.replace("_", " "), *(stats[n][k] for k in ("min", "median", "mean", "p95", "max"))]
                           for n in names])


def _format_tasks(title: str, s: dict) -> list[str]:
    total = s["n_tasks"]
    return [
        f"## {title}: {total} tasks from {s['n_repos']} repositories",
        markdown_table(["split", "tasks", "share"], [[k, n, _pct(n, total)] for k, n in s["split_sizes"].items()]),
        markdown_table(["family", "tasks", "share"], [[f, n, _pct(n, total)] for f, n in s["families"].items()]),
        markdown_table(["target type", "tasks", "share"],
                       [[t, n, _pct(n, total)] for t, n in s["target_types"].items()]),
        markdown_table(["knowledge source", "tasks", "share"],
                       [[k, n, _pct(n, total)] for k, n in s.get("knowledge_sources", {}).items()]),
        _lengths(s, ("tasks_per_repo", "prefix_lines", "prefix_lexical_tokens", "target_chars",
                     "target_lexical_tokens")),
    ]


def format_stats(stats: dict) -> str:
    """Markdown tables of the statistics (printed by ``stats`` and put in the data card)."""
    parts = [f"{stats['n_repos_ok']} of {stats['n_repos_listed']} listed repositories gave tasks; "
             f"{stats['n_failures']} failures recorded (`failures.jsonl`)."]
    if stats["static"]:
        parts += _format_tasks("Static track", stats["static"])
    if stats["evolution"]:
        parts += _format_tasks("Evolution track", stats["evolution"])
        c = stats["commits"]
        events = ", ".join(f"{n} {e}" for e, n in sorted(c["events"].items())) or "none"
        parts += [f"## Kept commits: {c['n_commits']}",
                  f"{c['added_assertions']} assertions added and {c['modified_assertions']} "
                  f"modified in kept commits; evolution tasks by event: {events}.",
                  markdown_table(["split", "commits"], [[k, n] for k, n in c["split_sizes"].items()]),
                  _lengths(c, ("commits_per_repo", "kept_ratio", "tasks_per_commit", "diff_bytes"))]
    parts.append("Lexical tokens count identifiers, numbers and punctuation marks; model tokenizers differ.")
    for track, counts in stats["filter_counts"].items():
        what = "context table" if track == "context" else f"{track} track"
        parts.append(f"## Filters and events, {what} (first reason per item)")
        parts.append(markdown_table(["counter", "count", "meaning"],
                                    [[Markdown(f"`{r}`"), n, describe(r)] for r, n in counts.items()])
                     if counts else "Nothing was filtered.")
    return "\n\n".join(parts) + "\n"
