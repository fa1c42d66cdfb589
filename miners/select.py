"""Repository selection through the GitHub search API (SPEC section 3).

In-distribution: Python, a given licence, at least ``min_stars`` stars, pushed since
``pushed_after``, created before the cutoff, not a fork. Out-of-distribution: created
after the cutoff, MIT or Apache-2.0, no star floor, 100 KB to 200 MB. Both keep only
repositories whose root shows a test suite (a tests/ or test/ directory, conftest.py,
pytest.ini or tox.ini). The result is a repository list for ``repopeftbench build``.

The search API returns at most 1,000 results per query, so a query whose total is
larger is split into star ranges until each part fits.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from repopeftbench.errors import UserError

TEST_MARKERS = frozenset({"tests", "test", "testing", "conftest.py", "pytest.ini", "tox.ini"})
SEARCH_CAP = 1000


class SelectError(UserError, RuntimeError):
    """The search API could not be used (bad token, rate limit, unreachable)."""


@dataclass(frozen=True)
class SelectConfig:
    licenses: tuple[str, ...] = ("mit",)
    min_stars: int = 300
    pushed_after: str = "2023-01-01"
    cutoff: str = "2025-04-01"
    ood_licenses: tuple[str, ...] = ("mit", "apache-2.0")
    ood_min_kb: int = 100
    ood_max_kb: int = 200_000
    max_repos: int | None = None       # per track, after filtering
    check_tests: bool = True
    max_star_split: int = 1_000_000


class GitHubClient:
    def __init__(self, api_url: str = "https://api.github.com", token: str | None = None,
                 max_wait: float = 120.0, sleep=time.sleep):
        self.api_url = api_url.rstrip("/")
        self.token = token if token is not None else (os.environ.get("GITHUB_TOKEN")
                                                      or os.environ.get("GH_TOKEN"))
        self.max_wait, self.sleep = max_wait, sleep
        self.requests = 0

    def get(self, path: str, params: dict | None = None) -> dict | list:
        url = f"{self.api_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "repopeftbench-select",
                   "X-GitHub-Api-Version": "2022-11-28"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in range(5):
            self.requests += 1
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
                    return json.loads(r.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                if exc.code in (403, 429) and attempt < 4:
                    wait = self._wait_seconds(exc.headers)
                    if wait is not None and wait <= self.max_wait:
                        self.sleep(wait)
                        continue
                body = exc.read().decode("utf-8", errors="replace")[:200]
                hint = " (set GITHUB_TOKEN)" if exc.code in (401, 403) and not self.token else ""
                raise SelectError(f"GET {url}: HTTP {exc.code}{hint}: {body}") from None
            except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
                raise SelectError(f"GET {url}: {exc}") from None
        raise SelectError(f"GET {url}: still rate-limited after retries")

    @staticmethod
    def _wait_seconds(headers) -> float | None:
        if headers.get("Retry-After"):
            return float(headers["Retry-After"])
        if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset"):
            return max(0.0, float(headers["X-RateLimit-Reset"]) - time.time()) + 1
        return None

    def search(self, query: str, lo: int, hi: int | None) -> list[dict]:
        """All repositories of ``query`` with stars in [lo, hi], splitting ranges over 1,000."""
        stars = f"stars:{lo}..{hi}" if hi is not None else f"stars:>={lo}"
        first = self.get("/search/repositories", {"q": f"{query} {stars}", "sort": "stars",
                                                  "order": "desc", "per_page": 100, "page": 1})
        total = int(first.get("total_count", 0))
        if total > SEARCH_CAP and (hi is None or hi > lo):
            top = hi if hi is not None else max(lo * 1000, 1_000_000)
            mid = (lo + top) // 2
            upper = self.search(query, mid + 1, hi)
            return upper + self.search(query, lo, mid)
        items = list(first.get("items", []))
        page = 1
        while len(items) < min(total, SEARCH_CAP) and first.get("items"):
            page += 1
            more = self.get("/search/repositories", {"q": f"{query} {stars}", "sort": "stars",
                                                     "order": "desc", "per_page": 100, "page": page})
            if not more.get("items"):
                break
            items.extend(more["items"])
        return items

    def has_tests(self, full_name: str) -> bool:
        try:
            listing = self.get(f"/repos/{full_name}/contents/")
        except SelectError:
            return False
        return isinstance(listing, list) and any(e.get("name") in TEST_MARKERS for e in listing)


def _row(item: dict, split: str | None) -> dict:
    lic = (item.get("license") or {}).get("spdx_id") or ""
    return {"repo_id": item["full_name"], "url": item["clone_url"], "license": lic,
            "stars": item.get("stargazers_count", 0), "created_at": item.get("created_at", ""),
            "pushed_at": item.get("pushed_at", ""), "split": split or ""}


def select_repositories(client: GitHubClient, config: SelectConfig, progress=None) -> list[dict]:
    """Rows of the repository list, in-distribution then OOD, each sorted by repo_id."""
    cut = config.cutoff
    tracks = [
        ("id", [f"language:Python license:{lic} fork:false pushed:>={config.pushed_after} created:<{cut}"
                for lic in config.licenses], config.min_stars),
        ("ood", [f"language:Python license:{lic} fork:false created:>={cut} "
                 f"size:{config.ood_min_kb}..{config.ood_max_kb}" for lic in config.ood_licenses], 0),
    ]
    rows: list[dict] = []
    seen: set[str] = set()
    for name, queries, min_stars in tracks:
        found: dict[str, dict] = {}
        for q in queries:
            for item in client.search(q, min_stars, None):
                if item.get("fork") or item["full_name"] in seen:
                    continue
                found.setdefault(item["full_name"], item)
        kept = []
        for full_name in sorted(found, key=lambda n: (-found[n].get("stargazers_count", 0), n)):
            if config.max_repos is not None and len(kept) >= config.max_repos:
                break
            if config.check_tests and not client.has_tests(full_name):
                continue
            kept.append(_row(found[full_name], "ood" if name == "ood" else None))
            seen.add(full_name)
            if progress:
                progress(1)
        rows.extend(sorted(kept, key=lambda r: r["repo_id"]))
    return rows


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["repo_id", "url", "license", "stars", "created_at",
                                             "pushed_at", "split"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_selection(config: SelectConfig, out: str | os.PathLike, api_url: str = "https://api.github.com",
                    progress: bool = True) -> str:
    """Select repositories and write the list to ``out`` (CSV); returns a one-line summary."""
    import sys

    from tqdm import tqdm

    from repopeftbench.io import atomic_write_text

    client = GitHubClient(api_url=api_url)
    with tqdm(desc="selecting", unit="repo", disable=not progress, file=sys.stderr) as bar:
        rows = select_repositories(client, config, progress=bar.update)
    atomic_write_text(out, rows_to_csv(rows))
    n_ood = sum(r["split"] == "ood" for r in rows)
    return (f"Wrote {out}: {len(rows) - n_ood} in-distribution and {n_ood} ood repositories "
            f"({client.requests} API requests).")
