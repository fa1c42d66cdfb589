"""Context providers: what goes before a task's prefix, as one concept any method composes
with (``--option context=NAME``), applied the same way to training and evaluation prompts.

- ``none``: the prefix alone.
- ``bm25`` / ``dense``: repository chunks retrieved for the prefix. The repository is the
  benchmark's ``context`` table (non-test .py/.md/.rst files at the snapshot), cut per file
  into chunks of ``context_chunk_tokens`` model tokens; the query is the last
  ``context_query_chars`` characters of the prefix; the top ``context_k`` chunks go before
  the prefix, the best one nearest to it, as many as fit the input budget (the prefix is
  never cut to make room). ``bm25`` ranks with BM25 (``bm25s``), ``dense`` with
  all-MiniLM-L6-v2 embeddings (``sentence-transformers``). A repository's chunks (and
  embeddings) are built once and cached under the run's artifacts directory.
- ``drc``: dependency-resolved context (``evaluators.drc``): the definitions the prefix
  imports from its repository, compressed to ``context_budget`` tokens, the prefix's tail
  always kept.
- ``card``: the repository's API card (``evaluators.api_card``: public functions with
  signatures, classes, exceptions, constants, doctest examples), the same for each of its
  tasks, cut to ``context_budget`` tokens and the room the prefix leaves.

The budget is the input budget: ``max_input_tokens`` at evaluation, ``max_seq_len`` in
training (the harness holds the two equal). ``rag-bm25``, ``rag-dense``, ``drc`` and
``fft-rag`` are these providers on the pretrained and fine-tuned models.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Callable, ClassVar

from repopeftbench.batching import budget_groups
from repopeftbench.errors import UserError
from repopeftbench.io import atomic_write_text, canonical_json, sha256_text

from .models import minilm_path


@dataclass
class ContextOptions:
    """The context options every method that builds prompts takes (``--option KEY=VALUE``)."""
    context: str = "none"             # none | bm25 | dense | drc | card
    context_k: int = 3                # bm25, dense: chunks retrieved
    context_chunk_tokens: int = 512   # bm25, dense: tokens per chunk
    context_query_chars: int = 2000   # bm25, dense: the query, the prefix's last characters
    context_budget: int = 4096        # drc, card: tokens of context at most (the input budget cuts further)
    # whose context: the task's own repository, or (a control) another one's: half-way
    # round the benchmark's sorted repositories, the same text a task of that one gets
    context_source: str = "own"       # own | other


CONTEXT_FIELDS = tuple(f.name for f in fields(ContextOptions))
# added after runs with a context were cached: left out of a run key at its default
CONTEXT_KEYLESS = ("context_source",)
SOURCES = ("own", "other")


def context_options(options) -> ContextOptions:
    """The context options of a method's options (the defaults where it has none)."""
    return ContextOptions(**{k: getattr(options, k) for k in CONTEXT_FIELDS if hasattr(options, k)})


class ContextProvider:
    """Builds the prompts of a repository's tasks: context, then the prefix."""
    name: ClassVar[str] = "none"

    def __init__(self, options: ContextOptions, run):
        self.options, self.run = options, run        # run: the method's RunContext

    def setup(self, bench) -> None:
        self.bench = bench

    def source(self, repo_id: str) -> str:
        """The repository whose context a task of ``repo_id`` gets (``context_source``)."""
        if self.options.context_source == "own":
            return repo_id
        if getattr(self, "_partner", None) is None:
            from .partners import halfway_partners
            self._partner = halfway_partners(r["repo_id"] for r in
                                             self.bench.repos(columns=["repo_id"]))
        return self._partner.get(repo_id, repo_id)

    def prompts(self, repo_id: str, tasks: list[dict], budget: int) -> list[str]:
        return [t["prefix"] for t in tasks]

    def _tokenizer(self):
        return self.run.model()[1]

    def _require_context(self, bench) -> None:
        if not bench.has("context"):
            raise UserError(f"{bench.dir}: no context table; this benchmark was built before "
                            f"'context' existed: rebuild it with 'repopeftbench build'")


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


class _Retrieval(ContextProvider):
    """Chunks of the repository's context table, ranked for the prefix."""

    def setup(self, bench) -> None:
        self._require_context(bench)
        self.bench = bench
        self._indexes: dict[str, tuple[list[str], _TokenCounts, object]] = {}

    def _chunks(self, repo_id: str) -> tuple[list[str], _TokenCounts]:
        """(chunk texts, their token counts) of a repository; the texts are cached on disk,
        a chunk's token count is computed when it is first retrieved."""
        rows = self.bench.context(repo_id, columns=["path", "content", "commit_sha"])
        key = sha256_text(canonical_json({
            "repo": repo_id, "commit": rows[0]["commit_sha"] if rows else None,
            "files": [r["path"] for r in rows], "chunk_tokens": self.options.context_chunk_tokens,
            "model": self.run.model_name}))[:16]
        path = self.run.artifacts("chunks") / f"{key}.json"
        tokenizer = self._tokenizer()
        if path.exists():
            chunks = json.loads(path.read_text())["chunks"]
            return chunks, _TokenCounts(chunks, tokenizer)
        size = self.options.context_chunk_tokens
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

    def prompts(self, repo_id: str, tasks: list[dict], budget: int) -> list[str]:
        chunks, sizes, index = self._index(self.source(repo_id))
        if index is None:
            return [t["prefix"] for t in tasks]
        tokenizer = self._tokenizer()
        queries = [t["prefix"][-self.options.context_query_chars:] for t in tasks]
        ranked = self.rank(index, queries, min(self.options.context_k, len(chunks)))
        out = []
        for task, hits in zip(tasks, ranked):
            room = budget - len(tokenizer(task["prefix"])["input_ids"]) - 2 * len(hits)
            chosen = []
            for i in hits:
                if sizes[i] <= room:
                    chosen.append(i)
                    room -= sizes[i]
            # best chunk last, nearest to the prefix
            context = "\n\n".join(chunks[i] for i in reversed(chosen))
            out.append(f"{context}\n\n{task['prefix']}" if chosen else task["prefix"])
        return out


class BM25Context(_Retrieval):
    name = "bm25"

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


class DenseContext(_Retrieval):
    name = "dense"

    def _encoder(self):
        if getattr(self, "_st", None) is None:
            from sentence_transformers import SentenceTransformer
            self._st = SentenceTransformer(minilm_path(self.needed_by), device=self.run.device)
        return self._st

    needed_by = "context=dense"

    def build_index(self, repo_id: str, chunks: list[str]):
        import numpy as np

        key = sha256_text("\0".join(chunks))[:16]
        path = self.run.artifacts("embeddings") / f"{key}.npy"
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


class DRCContext(ContextProvider):
    """The definitions the prefix imports from its repository, before the prefix."""
    name = "drc"

    def setup(self, bench) -> None:
        self._require_context(bench)
        self.bench = bench
        self._resolvers: dict = {}

    def resolver(self, repo_id: str):
        from .drc import Resolver
        if repo_id not in self._resolvers:
            rows = self.bench.context(repo_id, columns=["path", "content"])
            self._resolvers[repo_id] = Resolver({r["path"]: r["content"] for r in rows
                                                 if r["path"].endswith(".py")})
        return self._resolvers[repo_id]

    def prompts(self, repo_id: str, tasks: list[dict], budget: int) -> list[str]:
        from .drc import resolve
        tokenizer = self._tokenizer()

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        out = []
        for t in tasks:
            room = budget - count(t["prefix"]) - 2
            got = resolve(t["prefix"], t.get("test_file", ""), self.resolver(self.source(repo_id)),
                          min(self.options.context_budget, max(0, room)), count)
            out.append(f"{got.text}\n{t['prefix']}" if got.text else t["prefix"])
        return out


class CardContext(ContextProvider):
    """The repository's API card (``evaluators.api_card``) before the prefix: the same for
    every task of the repository, cut to the room the prefix leaves."""
    name = "card"

    def setup(self, bench) -> None:
        self._require_context(bench)
        self.bench = bench
        self._cards: dict[str, tuple[dict, dict]] = {}

    def card(self, repo_id: str) -> tuple[dict, dict]:
        """(sections, token count of each line) of a repository's card, made once."""
        if repo_id not in self._cards:
            from .api_card import card_sections
            rows = self.bench.context(repo_id, columns=["path", "content"])
            sections = card_sections({r["path"]: r["content"] for r in rows})
            lines = sorted({x for v in sections.values() for x in v}
                           | {f"## {k}" for k in sections} | {f"# API of {repo_id}"})
            ids = self._tokenizer()(lines, add_special_tokens=False)["input_ids"] if lines else []
            self._cards[repo_id] = (sections, {x: len(i) + 1 for x, i in zip(lines, ids)})
        return self._cards[repo_id]

    def prompts(self, repo_id: str, tasks: list[dict], budget: int) -> list[str]:
        from .api_card import render_card
        tokenizer = self._tokenizer()
        source = self.source(repo_id)
        sections, counts = self.card(source)
        out = []
        for t in tasks:
            room = budget - len(tokenizer(t["prefix"], add_special_tokens=False)["input_ids"]) - 2
            text = render_card(sections, min(self.options.context_budget, room), counts.__getitem__,
                               source)
            out.append(f"{text}{t['prefix']}" if text else t["prefix"])
        return out


PROVIDERS: dict[str, type[ContextProvider]] = {
    "none": ContextProvider, "bm25": BM25Context, "dense": DenseContext, "drc": DRCContext,
    "card": CardContext}

def make_provider(options: ContextOptions, run, needed_by: str = "") -> ContextProvider:
    if options.context not in PROVIDERS:
        raise UserError(f"unknown context {options.context!r}; choose from {', '.join(PROVIDERS)}")
    if options.context_source not in SOURCES:
        raise UserError(f"unknown context_source {options.context_source!r}; choose from "
                        f"{', '.join(SOURCES)}")
    provider = PROVIDERS[options.context](options, run)
    if isinstance(provider, DenseContext) and needed_by:
        provider.needed_by = needed_by
    return provider


def prompt_function(provider: ContextProvider, tasks: list[dict], budget: int
                    ) -> Callable[[dict], str]:
    """``prompt(task)`` for training: every task's prompt built once, by repository."""
    by_repo: dict[str, list[dict]] = {}
    for t in tasks:
        by_repo.setdefault(t["repo_id"], []).append(t)
    prompts: dict[str, str] = {}
    for repo_id, group in sorted(by_repo.items()):
        prompts.update(zip((t["task_id"] for t in group), provider.prompts(repo_id, group, budget)))
    return lambda t: prompts[t["task_id"]]
