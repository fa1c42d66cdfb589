"""Statistics of a built benchmark directory (``repopeftbench stats`` and the data card)."""
from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from .schema import ASSERTION_TYPES, FILE_SPLITS, TARGET_TYPES

_LEX = re.compile(r"\w+|[^\w\s]")


def lexical_tokens(text: str) -> int:
    """Identifier/number/punctuation count: a tokenizer-free proxy for length."""
    return len(_LEX.findall(text))


def _quantiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "mean": 0.0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"min": ordered[0], "median": statistics.median(ordered), "p95": p95,
            "max": ordered[-1], "mean": round(sum(ordered) / len(ordered), 1)}


def compute_stats(out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    if not (out_dir / "static").is_dir():
        raise FileNotFoundError(f"{out_dir}: no static/ directory; is this a built benchmark?")
    columns = ["repo_id", "assertion_type", "target_type", "prefix", "target"]
    per_split: dict[str, int] = {}
    families: Counter = Counter()
    target_types: Counter = Counter()
    per_repo: Counter = Counter()
    prefix_lines, prefix_tok, target_chars, target_tok = [], [], [], []
    for split in FILE_SPLITS:
        path = out_dir / "static" / f"{split}.parquet"
        if not path.exists():
            continue
        table = pq.read_table(path, columns=columns).to_pydict()
        per_split[split] = len(table["repo_id"])
        families.update(table["assertion_type"])
        target_types.update(table["target_type"])
        per_repo.update(table["repo_id"])
        for prefix, target in zip(table["prefix"], table["target"]):
            prefix_lines.append(prefix.count("\n") + 1)
            prefix_tok.append(lexical_tokens(prefix))
            target_chars.append(len(target))
            target_tok.append(lexical_tokens(target))
    total = sum(per_split.values())
    report_path = out_dir / "build_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return {
        "n_tasks": total, "n_repos_with_tasks": len(per_repo), "split_sizes": per_split,
        "families": {f: families.get(f, 0) for f in ASSERTION_TYPES},
        "target_types": {t: target_types.get(t, 0) for t in TARGET_TYPES},
        "tasks_per_repo": _quantiles(list(per_repo.values())),
        "prefix_lines": _quantiles(prefix_lines), "prefix_lexical_tokens": _quantiles(prefix_tok),
        "target_chars": _quantiles(target_chars), "target_lexical_tokens": _quantiles(target_tok),
        "filter_counts": report.get("filter_counts", {}),
        "n_repos_listed": report.get("n_repos_listed"), "n_failures": report.get("n_failures"),
    }


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_stats(stats: dict) -> str:
    """Markdown tables of the statistics (printed by ``stats`` and put in the data card)."""
    total = stats["n_tasks"]
    parts = [
        f"**{total}** tasks from **{stats['n_repos_with_tasks']}** repositories "
        f"({stats.get('n_repos_listed')} listed, {stats.get('n_failures')} failures recorded).",
        "### Split sizes",
        markdown_table(["split", "tasks", "share"],
                       [[s, n, _pct(n, total)] for s, n in stats["split_sizes"].items()]),
        "### Assertion families",
        markdown_table(["family", "tasks", "share"],
                       [[f, n, _pct(n, total)] for f, n in stats["families"].items()]),
        "### Target types",
        markdown_table(["target type", "tasks", "share"],
                       [[t, n, _pct(n, total)] for t, n in stats["target_types"].items()]),
        "### Lengths",
        markdown_table(["measure", "min", "median", "mean", "p95", "max"],
                       [[name.replace("_", " "), *(stats[name][k] for k in
                                                    ("min", "median", "mean", "p95", "max"))]
                        for name in ("tasks_per_repo", "prefix_lines", "prefix_lexical_tokens",
                                     "target_chars", "target_lexical_tokens")]),
        "Lexical tokens count identifiers, numbers and punctuation marks; model tokenizers differ.",
        "### Filters (tasks or files dropped, by first reason)",
        markdown_table(["reason", "count"], [[r, n] for r, n in stats["filter_counts"].items()])
        if stats["filter_counts"] else "No task was filtered.",
    ]
    return "\n\n".join(parts) + "\n"
