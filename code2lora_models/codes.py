"""Code vectors of a benchmark's repositories: snapshots (context table) and diff streams
(commits table), through the embedding cache."""
from __future__ import annotations

import re
import sys

import numpy as np
from tqdm import tqdm

from repopeftbench.dataset import Benchmark
from repopeftbench.errors import UserError

from .repo_embedding import EmbeddingCache, split_diff


def _bar(total: int, desc: str, progress: bool):
    return tqdm(total=total, desc=desc, unit="item", disable=not progress, file=sys.stderr,
                leave=False)


def snapshot_texts(repo_id: str, files: list[dict], inputs: str = "files",
                   card_chars: int = 6000) -> tuple[str, list[str]]:
    """(the embedding cache's kind, the texts encoded) of a snapshot's files (dicts with
    ``path`` and ``content``): the files, the API card, or both (``EncoderConfig.inputs``)."""
    contents = [f["content"] for f in files]
    if inputs == "files":
        return "snapshot", contents
    from evaluators.api_card import api_card
    card = api_card({f["path"]: f["content"] for f in files}, card_chars, repo_id)
    texts = [card] if inputs == "card" else contents + [card]
    return f"snapshot-{inputs}-{card_chars}", texts


def snapshot_vectors(bench: Benchmark, cache: EmbeddingCache, repo_ids: list[str],
                     progress: bool = True, inputs: str = "files", card_chars: int = 6000
                     ) -> dict[str, np.ndarray]:
    """Repository vector of each repository's non-test files at its static snapshot (or
    of its API card, or both: ``snapshot_texts``)."""
    if not bench.has("context"):
        raise UserError(f"{bench.dir}: no context table; Code2LoRA reads the repository from "
                        f"it: rebuild the benchmark with 'repopeftbench build'")
    items = []
    for repo in repo_ids:
        rows = bench.context(repo, columns=["commit_sha", "path", "content"])
        if not rows:
            raise UserError(f"{bench.dir}: repository {repo} has no non-test .py/.md/.rst file in "
                            f"the context table; Code2LoRA cannot encode it")
        kind, texts = snapshot_texts(repo, rows, inputs, card_chars)
        items.append((repo, rows[0]["commit_sha"], kind, texts))
    bar = _bar(len(items), "encoding repositories", progress)
    vectors = cache.many(items, progress=bar.update)
    bar.close()
    return dict(zip(repo_ids, vectors))


_HEADER = re.compile(r"^(diff --git |index |--- |\+\+\+ |new file mode|deleted file mode|"
                     r"old mode|new mode|similarity index|dissimilarity index|rename from|"
                     r"rename to|copy from|copy to|Binary files)")
_PATH = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)
_HUNK = re.compile(r"^@@ [^@]* @@ ?")


def bare_section(section: str) -> str:
    """A diff section without git's header lines: ``# path`` and the changed lines (a hunk
    header keeps only its function context). In one review the header lines took 80-94 of
    the 128 encoder tokens per file."""
    m = _PATH.search(section)
    out = [f"# {m.group(2)}"] if m else []
    for line in section.splitlines():
        if _HEADER.match(line):
            continue
        if line.startswith("@@"):
            rest = _HUNK.sub("", line).strip()
            if rest:
                out.append(f"@ {rest}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def diff_sections(diff: str, max_sections: int, headers: bool = True) -> list[str]:
    """A diff's per-file sections, at most ``max_sections`` of them (evenly spaced in path
    order; 0: all), with git's header lines (``headers``) or without (``bare_section``).
    Real histories hold diffs of hundreds of files (124 MB of diffs over 6,606 commits of
    30 repositories); the cap bounds the encoder's work per commit."""
    sections = split_diff(diff)
    if max_sections > 0 and len(sections) > max_sections:
        pick = np.linspace(0, len(sections) - 1, max_sections).round().astype(int)
        sections = [sections[i] for i in sorted(set(pick.tolist()))]
    return sections if headers else [bare_section(s) for s in sections]


def diff_kind(max_sections: int, headers: bool = True) -> str:
    """The embedding cache's kind of a diff vector (the encoding's settings)."""
    return f"diff{max_sections or ''}{'' if headers else '-bare'}"


def diff_sequences(bench: Benchmark, cache: EmbeddingCache, repo_ids: list[str],
                   progress: bool = True, max_sections: int = 0, headers: bool = True
                   ) -> dict[str, tuple[list[int], np.ndarray]]:
    """Per repository: the kept commits' indexes in history order and their diff vectors
    (T, 2 * encoder dim); the first diff is the first snapshot (against the empty tree)."""
    if not bench.splits("commits"):
        raise UserError(f"{bench.dir}: no commits table; Code2LoRA-Evo needs the evolution "
                        f"track: build with --tracks static,evolution")
    per_repo, items = {}, []
    for repo in repo_ids:
        rows = bench.commits(repo, columns=["commit_index", "commit_sha", "production_code_diff"])
        if not rows:
            raise UserError(f"{bench.dir}: repository {repo} has no kept commit")
        per_repo[repo] = [r["commit_index"] for r in rows]
        items += [(repo, r["commit_sha"], diff_kind(max_sections, headers),
                   diff_sections(r["production_code_diff"], max_sections, headers)) for r in rows]
    bar = _bar(len(items), "encoding diffs", progress)
    vectors = cache.many(items, progress=bar.update)
    bar.close()
    out, at = {}, 0
    for repo in repo_ids:
        n = len(per_repo[repo])
        out[repo] = (per_repo[repo], np.stack(vectors[at:at + n]))
        at += n
    return out
