"""From chunk embeddings to one vector per repository snapshot or per diff, cached.

Pooling (SPEC section 9): chunk embeddings are mean-pooled per file; files are pooled per
repository as [weighted mean ; max], the weights being each file's chunk count (so a long
module counts more than an ``__init__.py``). A diff is pooled the same way over the files
it touches. The result has twice the encoder's dimension.

Vectors are cached in one Parquet file per encoder, keyed by (repository, commit, kind,
encoder) and checked against a digest of the text they came from: a rebuilt benchmark
whose files differ for the same commit is re-embedded, never served stale vectors.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from repopeftbench.batching import budget_groups
from repopeftbench.io import atomic_write_bytes

from .encoder import TextEncoder

_DIFF_FILE = re.compile(r"^diff --git ", re.M)


def pool_files(per_file: list[np.ndarray], dim: int) -> np.ndarray:
    """[weighted mean ; max] over files of their mean chunk embedding; (2 * dim,)."""
    kept = [c for c in per_file if len(c)]
    if not kept:
        return np.zeros(2 * dim, np.float32)
    means = np.stack([c.mean(0) for c in kept])                          # (files, dim)
    weights = np.array([len(c) for c in kept], np.float64)[:, None]      # chunks per file
    mean = (means * weights).sum(0) / weights.sum()
    return np.concatenate([mean, means.max(0)]).astype(np.float32)


def split_diff(diff: str) -> list[str]:
    """A unified diff cut into its per-file sections."""
    starts = [m.start() for m in _DIFF_FILE.finditer(diff)] or ([0] if diff.strip() else [])
    return [diff[a:b] for a, b in zip(starts, starts[1:] + [len(diff)])]


def digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:16]


_SCHEMA = pa.schema([("repo_id", pa.string()), ("commit_sha", pa.string()),
                     ("kind", pa.string()), ("encoder", pa.string()),
                     ("digest", pa.string()), ("vector", pa.list_(pa.float32()))])


class EmbeddingCache:
    """Snapshot and diff vectors of one encoder, in ``DIR/<encoder hash>.parquet``."""

    def __init__(self, directory: str | Path, encoder: TextEncoder):
        self.encoder = encoder
        name = hashlib.sha256(encoder.identity.encode()).hexdigest()[:16]
        self.path = Path(directory) / f"{name}.parquet"
        self._rows: dict[tuple[str, str, str], tuple[str, np.ndarray]] = {}
        if self.path.exists():
            t = pq.read_table(self.path).to_pylist()
            for r in t:
                self._rows[(r["repo_id"], r["commit_sha"], r["kind"])] = (
                    r["digest"], np.asarray(r["vector"], np.float32))
        self._dirty = False

    def _get(self, key: tuple[str, str, str], texts: list[str]) -> np.ndarray | None:
        hit = self._rows.get(key)
        return hit[1] if hit is not None and hit[0] == digest(texts) else None

    def snapshot(self, repo_id: str, commit: str, files: list[str]) -> np.ndarray:
        """The repository vector of the files' contents at ``commit``."""
        return self.many([(repo_id, commit, "snapshot", files)])[0]

    def many(self, items: list[tuple[str, str, str, list[str]]], progress=None) -> list[np.ndarray]:
        """Vectors of (repo_id, commit, kind, texts) items; missing ones are embedded in
        groups of about 256 texts (their chunks batched together), each group written to
        the cache as soon as it is done."""
        out: list[np.ndarray | None] = [self._get((r, c, k), texts) for r, c, k, texts in items]
        todo = [i for i, v in enumerate(out) if v is None]
        for part in budget_groups(todo, [len(items[i][3]) for i in todo], budget=256):
            texts = [t for i in part for t in items[i][3]]
            vectors = self.encoder.embed(texts)
            at = 0
            for i in part:
                n = len(items[i][3])
                out[i] = pool_files(vectors[at:at + n], self.encoder.dim)
                at += n
                r, c, k, ts = items[i]
                self._rows[(r, c, k)] = (digest(ts), out[i])
                self._dirty = True
            self.flush()                   # an interrupted encoding keeps what it did
            if progress is not None:
                progress(len(part))
        return [v for v in out if v is not None]

    def flush(self) -> None:
        if not self._dirty:
            return
        keys = sorted(self._rows)
        table = pa.table({
            "repo_id": [k[0] for k in keys], "commit_sha": [k[1] for k in keys],
            "kind": [k[2] for k in keys], "encoder": [self.encoder.identity] * len(keys),
            "digest": [self._rows[k][0] for k in keys],
            "vector": [self._rows[k][1].tolist() for k in keys]}, schema=_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, sink.getvalue().to_pybytes())
        self._dirty = False
