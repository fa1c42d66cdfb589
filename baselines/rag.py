"""Retrieval-augmented generation baselines: the pretrained model with a retrieval context
provider (``evaluators.context``). ``rag-bm25`` is ``pretrained --option context=bm25``
and ``rag-dense`` is ``pretrained --option context=dense``, under their own names and
options (``k``, ``chunk_tokens``, ``query_chars``), with the same prompts and run keys as
before the providers existed."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from evaluators.context import ContextOptions
from evaluators.registry import Method, register_method


@dataclass
class RagOptions:
    chunk_tokens: int = 512
    k: int = 3
    query_chars: int = 2000

    def context_options(self, context: str) -> ContextOptions:
        return ContextOptions(context=context, context_k=self.k,
                              context_chunk_tokens=self.chunk_tokens,
                              context_query_chars=self.query_chars)


class _Rag(Method):
    Options = RagOptions
    retriever: ClassVar[str] = ""
    provider_name: ClassVar[str] = ""

    def context_options(self) -> ContextOptions:
        return self.options.context_options(self.provider_name)

    def config(self) -> dict:
        return {"name": self.name, "retriever": self.retriever, **asdict(self.options)}


@register_method("rag-bm25")
class RagBM25(_Rag):
    """BM25 retrieval of repository chunks prepended to the prefix (k=3, 512 tokens)."""
    retriever = "bm25s"
    provider_name = "bm25"
    requires = ("bm25s",)


@register_method("rag-dense")
class RagDense(_Rag):
    """Dense retrieval (all-MiniLM-L6-v2) of repository chunks prepended to the prefix."""
    retriever = "all-MiniLM-L6-v2"
    provider_name = "dense"
    demo = False          # embedding whole packages takes minutes on a CPU
