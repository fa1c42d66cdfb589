"""A trained Code2LoRA: the hypernetwork, Evo's GRU, and what they were trained with.

On disk (``CKPT/hypernetwork/``): ``hypernetwork.safetensors`` and ``hypernetwork.json``
(configuration, module shapes, base model and its revision, encoder identity and
configuration, kind), plus ``gru.safetensors`` for Evo. Everything that turns code into
an adapter goes through this object, for the harness and for ``repopeftbench adapt``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from evaluators.lora.model import LoraAdapter
from repopeftbench.errors import UserError

from .audit import distinct_pairs
from .encoder import EncoderConfig, TextEncoder, make_encoder
from .evo import DiffGRU, EvoConfig
from .hypernetwork import Code2LoRA
from .repo_embedding import EmbeddingCache

GRU_FILE = "gru.safetensors"
TABLE_FILE = "repository_table.safetensors"     # encoder=table: the learned vectors


@lru_cache(maxsize=16)
def _identity(size: int, rank: int, side: str) -> torch.Tensor:
    """[I; 0] (rank x size, an A) or [I, 0] (size x rank, a B): the identity factor of a
    full-rank mean update, one tensor for every module and mean of its size (never
    written to: adapters are read)."""
    e = torch.zeros(rank, size) if side == "A" else torch.zeros(size, rank)
    e.diagonal().fill_(1.0)
    return e


def embedding_cache_dir() -> Path:
    from evaluators.models import cache_root
    return cache_root() / "embeddings"


@dataclass
class Code2LoRABundle:
    kind: str                        # "static" or "evo"
    hyper: Code2LoRA
    encoder_config: EncoderConfig
    encoder_identity: str
    base_model: str
    model_revision: str
    gru: DiffGRU | None = None
    diff_sections: int = 0           # Evo: files encoded per diff (0: all)
    diff_headers: bool = True        # Evo: git's header lines kept in the encoded diffs
    extra: dict = field(default_factory=dict)
    table: torch.Tensor | None = None             # encoder=table: (repositories, dim)
    table_repos: list[str] = field(default_factory=list)
    encoder: TextEncoder | None = field(default=None, repr=False)
    cache: EmbeddingCache | None = field(default=None, repr=False)
    progress: bool = True

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file
        d = Path(directory)
        meta = {"kind": self.kind, "encoder": self.encoder_identity,
                "encoder_config": self.encoder_config.to_dict(), "base_model": self.base_model,
                "model_revision": self.model_revision, **self.extra}
        if self.gru is not None:
            meta["evo"] = {"d_in": self.gru.d_in, "diff_sections": self.diff_sections,
                           "diff_headers": self.diff_headers, **self.gru.config.to_dict()}
        if self.table is not None:
            meta["table_repos"] = list(self.table_repos)
        self.hyper.save(d, meta)
        if self.table is not None:
            save_file({"table": self.table.detach().cpu().contiguous()}, str(d / (TABLE_FILE + ".tmp")),
                      metadata={"format": "pt"})
            (d / (TABLE_FILE + ".tmp")).replace(d / TABLE_FILE)
        if self.gru is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.gru.state_dict().items()}
            save_file(state, str(d / (GRU_FILE + ".tmp")), metadata={"format": "pt"})
            (d / (GRU_FILE + ".tmp")).replace(d / GRU_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> "Code2LoRABundle":
        from safetensors.torch import load_file
        meta = Code2LoRA.read_config(directory)
        hyper = Code2LoRA.load(directory).eval()
        gru, sections, headers = None, 0, True
        if meta["kind"] == "evo":
            evo = dict(meta["evo"])
            sections = evo.pop("diff_sections", 0)
            headers = evo.pop("diff_headers", True)     # bundles written before kept them
            gru = DiffGRU(evo.pop("d_in"), EvoConfig(**evo)).eval()
            gru.load_state_dict(load_file(str(Path(directory) / GRU_FILE)))
        table = None
        if "table_repos" in meta:
            table = load_file(str(Path(directory) / TABLE_FILE))["table"]
        return cls(meta["kind"], hyper, EncoderConfig(**meta["encoder_config"]), meta["encoder"],
                   meta["base_model"], meta["model_revision"], gru, sections, headers,
                   table=table, table_repos=list(meta.get("table_repos", [])))

    # ------------------------------------------------------------------ checks
    def check(self, model_name: str, encoder_config: EncoderConfig | None = None) -> None:
        """A clear error for a checkpoint of another base model or another encoder."""
        from evaluators.checkpoints import model_revision
        if model_revision(model_name) != self.model_revision:
            raise UserError(f"this Code2LoRA checkpoint was trained for base model "
                            f"{self.base_model!r} ({self.model_revision}), not {model_name!r}")
        if encoder_config is not None and encoder_config != self.encoder_config:
            raise UserError(f"encoder {encoder_config.name!r} (chunks of {encoder_config.chunk_tokens}, "
                            f"at most {encoder_config.max_chunks}) differs from the checkpoint's "
                            f"{self.encoder_identity!r}; the hypernetwork reads only its own "
                            f"encoder's vectors")

    def attach_encoder(self, device: str = "cpu", model=None, tokenizer=None,
                       progress: bool = True) -> None:
        """Load the encoder the checkpoint was trained with (``base`` needs the model)."""
        from evaluators.checkpoints import model_revision
        self.encoder = make_encoder(self.encoder_config, device, model, tokenizer,
                                    model_revision(self.base_model))
        if not self.encoder_identity:          # a bundle being trained takes the encoder's
            self.encoder_identity = self.encoder.identity
        elif self.encoder.identity != self.encoder_identity:
            raise UserError(f"encoder {self.encoder.identity!r} differs from the checkpoint's "
                            f"{self.encoder_identity!r}")
        self.cache = EmbeddingCache(embedding_cache_dir(), self.encoder)
        self.progress = progress

    # ------------------------------------------------------------------ codes
    def snapshot_codes(self, bench, repos: list[str]) -> dict[str, np.ndarray]:
        from .codes import snapshot_vectors
        if self.encoder_config.name == "table":
            row = {r: i for i, r in enumerate(self.table_repos)}
            unknown = sorted(set(repos) - set(row))
            if unknown:
                raise UserError(f"encoder=table has learned vectors for its {len(row)} training "
                                f"repositories only, not {unknown[0]} (evaluate in-repo splits)")
            assert self.table is not None
            return {r: self.table[row[r]].detach().float().numpy() for r in repos}
        assert self.cache is not None, "attach_encoder first"
        return snapshot_vectors(bench, self.cache, repos, self.progress,
                                self.encoder_config.inputs, self.encoder_config.card_chars)

    def commit_states(self, bench, repos: list[str]) -> dict[str, dict[int, torch.Tensor]]:
        """Per repository, the GRU state after each kept commit, by commit index."""
        from .codes import diff_sequences
        assert self.cache is not None and self.gru is not None
        out = {}
        with torch.no_grad():
            for repo, (indexes, seq) in diff_sequences(bench, self.cache, repos, self.progress,
                                                       self.diff_sections, self.diff_headers).items():
                states = self.gru.run(torch.from_numpy(seq))
                out[repo] = {i: s for i, s in zip(indexes, states)}
        return out

    def diff_vector(self, repo_id: str, commit: str, diff: str) -> np.ndarray:
        """One diff's vector, encoded as in training (the same cap on files per diff)."""
        from .codes import diff_kind, diff_sections
        assert self.cache is not None
        kind = diff_kind(self.diff_sections, self.diff_headers)
        return self.cache.many([(repo_id, commit, kind, diff_sections(
            diff, self.diff_sections, self.diff_headers))])[0]

    # ------------------------------------------------------------------ adapters
    def adapters(self, z: torch.Tensor, names: list[str]) -> list[LoraAdapter]:
        return self.hyper.adapters(z, names, self.base_model)

    @torch.no_grad()
    def update_sums(self, z: torch.Tensor, chunk: int = 16) -> tuple[dict, dict]:
        """(path -> sum over ``z`` of the weight updates B_i A_i, in float64; path -> path
        whose update it shares), for ``mean_adapter`` (empty for a head whose mean is that
        of its mixing weights)."""
        if hasattr(getattr(self.hyper, "head", None), "mixing"):
            return {}, {}
        dense: dict[str, torch.Tensor] = {}              # path of a distinct factor pair -> update
        alias: dict[str, str] = {}                       # path -> path whose update it shares
        for start in range(0, len(z), chunk):
            factors = self.hyper(z[start:start + chunk])
            alias = distinct_pairs(factors)
            for path, first in alias.items():
                if first != path:
                    continue
                a, b = factors[path]                     # (m, r, in), (m, out, r)
                update = torch.einsum("mor,mri->oi", b.double(), a.double())
                dense[path] = dense[path] + update if path in dense else update
        return dense, alias

    def mean_adapter(self, z: torch.Tensor, name: str, chunk: int = 16,
                     leave_out: int | None = None, sums: tuple[dict, dict] | None = None
                     ) -> LoraAdapter:
        """The adapter whose weight update is the mean of the generated updates over the
        code vectors ``z``: mean_i (alpha/r) B_i A_i, exactly. With ``leave_out=i``, the mean
        over every row but i (the audit's "mean" for item i must not contain item i's own
        adapter: with n items it would hold 1/n of it, biasing own minus mean toward 0).
        ``sums`` reuses ``update_sums(z)``.

        Averaging the factors instead is not the mean update, and can be nothing at all:
        (A, B) and (-A, -B) make the same update, and a hypernetwork that generates both
        signs averages to zero (seen with Code2LoRA-Evo, whose factor-mean adapter scored
        as the base model). The mean update has rank up to n r, with the same scale. When
        n r reaches min(in, out) it is written as it is, of full rank: the update as one
        factor and an identity (shared by every module of its size) as the other, no SVD
        (one per module and leave-one-out mean made a per-layer head's audit slow:
        ``benchmarks/bench_mean_adapter.py``). Below that, as a LoRA of the rank it has
        (SVD, singular values below 1e-6 of the largest dropped)."""
        head = getattr(self.hyper, "head", None)
        if hasattr(head, "mixing"):     # an update linear in mixing weights: their mean
            with torch.no_grad():
                w = head.mixing(self.hyper.standardised(z)).double()
                keep = [i for i in range(len(z)) if i != leave_out] if len(z) > 1 else [0]
                mean_w = w[keep].mean(0, keepdim=True).to(w.dtype)
                factors = head.from_mixing(mean_w.float())
            return LoraAdapter(self.hyper.spec, {p: a[0].float().cpu() for p, (a, _) in factors.items()},
                               {p: b[0].float().cpu() for p, (_, b) in factors.items()}, name,
                               self.base_model or None)
        dense, alias = sums if sums is not None else self.update_sums(z, chunk)
        n = max(1, len(z))
        if leave_out is not None and len(z) > 1:
            factors = self.hyper(z[leave_out:leave_out + 1])
            dense = {path: total - torch.einsum("mor,mri->oi", factors[path][1].double(),
                                                factors[path][0].double())
                     for path, total in dense.items()}
            n -= 1
        spec = self.hyper.spec
        bound = n * spec.r                               # the rank a mean of n updates can have
        parts: dict[str, tuple[torch.Tensor | None, torch.Tensor | None]] = {}  # None: identity
        ranks: dict[str, int] = {}
        for path, total in dense.items():
            out_dim, in_dim = total.shape
            if bound >= min(out_dim, in_dim):            # full rank: no factorisation to find
                m = (total / n).float()
                parts[path] = (None, m) if in_dim <= out_dim else (m, None)
                ranks[path] = min(out_dim, in_dim)
                continue
            u, sv, vh = torch.linalg.svd(total / n, full_matrices=False)
            k = max(1, int((sv > sv[0] * 1e-6).sum())) if sv.numel() and sv[0] > 0 else 1
            root = sv[:k].sqrt()
            parts[path] = ((root[:, None] * vh[:k]).float(), (u[:, :k] * root[None, :]).float())
            ranks[path] = k
        rank = max(ranks.values())
        padded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for path, (a, b) in parts.items():               # zero rows/columns change nothing
            pad = rank - ranks[path]
            padded[path] = (
                _identity(b.shape[1], rank, "A") if a is None
                else torch.cat([a, a.new_zeros(pad, a.shape[1])]) if pad else a,
                _identity(a.shape[0], rank, "B") if b is None
                else torch.cat([b, b.new_zeros(b.shape[0], pad)], 1) if pad else b)
        scaling = spec.scaling
        A = {path: padded[first][0] for path, first in alias.items()}
        B = {path: padded[first][1] for path, first in alias.items()}
        mean_spec = replace(spec, r=rank, alpha=scaling * rank)   # same scale alpha / r
        return LoraAdapter(mean_spec, A, B, name, self.base_model or None)
