"""Heads: from a code vector to LoRA factors for every target layer of the frozen model.

Both heads return, per target module path, ``A`` (n, r, in) and ``B`` (n, out, r) for a
batch of n code vectors, with A = tanh(W_A h) * exp(s_A) and B likewise, ``s`` a learned
log-scale per module type. The B projections start at zero, so the generated update
B @ A is zero at initialisation and training starts from the base model.

- ``direct`` (the published head): a 2-layer GELU trunk, then one (A, B) per module type,
  shared by all layers of that type.
- ``per_layer`` (Text-to-LoRA style): learned layer and module-type embeddings are
  concatenated with the projected code vector and go through the shared trunk, so each
  layer gets its own (A, B) from the same output projections.
- ``residual``: a shared LoRA (one (A0, B0) per layer, as shared LoRA trains) plus a
  repository-conditioned residual, a mix of ``basis`` learned low-rank adapters whose
  weights the code vector sets: update(z) = B0 A0 + sum_k w_k(z) B_k A_k. Every B starts
  at zero, so training starts from the base model and the residual from nothing; the
  mean of the generated updates is the adapter of the mean mixing weights (exactly: the
  update is linear in w), so "own minus mean" measures what the repository adds.

``stabilise`` (the publication's stabilisers): the log-scales start at -3.5 and the
scales are clamped to [1e-5, 0.3]; the trunk's output is L2-normalised and multiplied by
the square root of its width.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from repopeftbench.errors import UserError

# One module type: its name and the (in, out) shape of the linear layers of that type.
ModuleShapes = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class HeadConfig:
    kind: Literal["direct", "per_layer"] = "direct"
    hidden: int = 256            # trunk width
    embed_dim: int = 64          # per_layer: layer and module-type embedding size
    r: int = 16
    alpha: float = 32.0
    stabilise: bool = False      # the publication's log-scale init and clamp, normalised trunk
    basis: int = 4               # residual: basis adapters mixed per repository
    basis_r: int = 4             # residual: rank of each basis adapter

    def to_dict(self) -> dict:
        return asdict(self)


class _FactorProjections(nn.Module):
    """Per module type, h -> A (r, in) and h -> B (out, r), tanh-squashed and scaled."""

    def __init__(self, hidden: int, r: int, shapes: ModuleShapes, stabilise: bool = False):
        super().__init__()
        self.r, self.shapes, self.stabilise = r, shapes, stabilise
        self.to_A = nn.ModuleDict({t: nn.Linear(hidden, r * i) for t, (i, o) in shapes.items()})
        self.to_B = nn.ModuleDict({t: nn.Linear(hidden, o * r) for t, (i, o) in shapes.items()})
        # LoRA-like start: A ~ Kaiming-sized, B = 0 (the update B @ A is zero)
        self.log_scale_A = nn.ParameterDict({t: nn.Parameter(torch.tensor(-0.5 * math.log(i)))
                                             for t, (i, o) in shapes.items()})
        self.log_scale_B = nn.ParameterDict({t: nn.Parameter(torch.tensor(-0.5 * math.log(r)))
                                             for t in shapes})
        for t in shapes:
            nn.init.zeros_(self.to_B[t].weight)
            nn.init.zeros_(self.to_B[t].bias)
            if stabilise:
                self.log_scale_A[t].data.fill_(STABLE_LOG_SCALE)
                self.log_scale_B[t].data.fill_(STABLE_LOG_SCALE)

    def _scale(self, s: torch.Tensor) -> torch.Tensor:
        return s.exp().clamp(*STABLE_SCALE_RANGE) if self.stabilise else s.exp()

    def forward(self, t: str, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, o = self.shapes[t]                                              # h: (m, hidden)
        A = torch.tanh(self.to_A[t](h)) * self._scale(self.log_scale_A[t])  # (m, r * in)
        B = torch.tanh(self.to_B[t](h)) * self._scale(self.log_scale_B[t])  # (m, out * r)
        return A.view(-1, self.r, i), B.view(-1, o, self.r)


STABLE_LOG_SCALE = -3.5
STABLE_SCALE_RANGE = (1e-5, 0.3)


class _Trunk(nn.Module):
    """A 2-layer GELU MLP; with ``stabilise`` its output is L2-normalised and multiplied by
    the square root of its width."""

    def __init__(self, d_in: int, hidden: int, stabilise: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU())
        self.stabilise, self.hidden = stabilise, hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        if self.stabilise:
            h = nn.functional.normalize(h, dim=-1) * math.sqrt(self.hidden)
        return h


class DirectHead(nn.Module):
    """One (A, B) per module type, shared by the layers of that type."""

    def __init__(self, d_in: int, config: HeadConfig, shapes: ModuleShapes,
                 layers: dict[str, list[str]]):
        super().__init__()
        self.layers = layers                       # module type -> module paths of that type
        self.trunk = _Trunk(d_in, config.hidden, config.stabilise)
        self.proj = _FactorProjections(config.hidden, config.r, shapes, config.stabilise)

    def forward(self, z: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        h = self.trunk(z)                                                  # (n, hidden)
        out = {}
        for t, paths in self.layers.items():
            A, B = self.proj(t, h)                                         # (n, r, in), (n, out, r)
            for p in paths:                                                # same tensors, no copy
                out[p] = (A, B)
        return out


class PerLayerHead(nn.Module):
    """(A, B) per layer: [code ; layer embedding ; module-type embedding] -> trunk -> factors."""

    def __init__(self, d_in: int, config: HeadConfig, shapes: ModuleShapes,
                 layers: dict[str, list[str]]):
        super().__init__()
        self.layers = layers
        n_layers = max(len(p) for p in layers.values())
        self.code = nn.Linear(d_in, config.hidden)
        self.layer_emb = nn.Embedding(n_layers, config.embed_dim)
        self.type_emb = nn.Embedding(len(shapes), config.embed_dim)
        self.type_index = {t: i for i, t in enumerate(sorted(shapes))}
        self.trunk = _Trunk(config.hidden + 2 * config.embed_dim, config.hidden, config.stabilise)
        self.proj = _FactorProjections(config.hidden, config.r, shapes, config.stabilise)

    def forward(self, z: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        n = z.shape[0]
        code = self.code(z)                                                # (n, hidden)
        out = {}
        for t, paths in self.layers.items():
            L = len(paths)
            lay = self.layer_emb(torch.arange(L, device=z.device))          # (L, e)
            typ = self.type_emb.weight[self.type_index[t]].expand(L, -1)    # (L, e)
            x = torch.cat([code[:, None, :].expand(n, L, -1),
                           torch.cat([lay, typ], -1)[None].expand(n, L, -1)], -1)  # (n, L, h + 2e)
            A, B = self.proj(t, self.trunk(x.reshape(n * L, -1)))          # (n L, r, in), (n L, out, r)
            A, B = A.view(n, L, *A.shape[1:]), B.view(n, L, *B.shape[1:])
            for j, p in enumerate(paths):
                out[p] = (A[:, j], B[:, j])
        return out


def _key(path: str) -> str:
    return path.replace(".", "__")                 # parameter names may not hold dots


class ResidualHead(nn.Module):
    """Shared LoRA + sum_k w_k(z) (basis adapter k): per module path A0 (r, in) and B0
    (out, r), and K basis factors A_k (r_b, in), B_k (out, r_b); the code vector sets the
    K mixing weights. The generated factors are the concatenation, of rank r + K r_b:
    A = [A0; w_1 A_1; ...], B = [B0, B_1, ...]."""

    def __init__(self, d_in: int, config: HeadConfig, shapes: ModuleShapes,
                 layers: dict[str, list[str]]):
        super().__init__()
        self.layers = layers
        K, rb, r = config.basis, config.basis_r, config.r
        self.K, self.rank = K, r + K * rb
        self.trunk = _Trunk(d_in, config.hidden, config.stabilise)
        self.mix = nn.Linear(config.hidden, K)
        self.A0, self.B0 = nn.ParameterDict(), nn.ParameterDict()
        self.Ak, self.Bk = nn.ParameterDict(), nn.ParameterDict()
        for t, paths in layers.items():
            i, o = shapes[t]
            for p in paths:
                a0 = torch.empty(r, i)
                nn.init.kaiming_uniform_(a0, a=math.sqrt(5))            # as PEFT's LoRA A
                self.A0[_key(p)] = nn.Parameter(a0)
                self.B0[_key(p)] = nn.Parameter(torch.zeros(o, r))
                ak = torch.empty(K, rb, i)
                for k in range(K):
                    nn.init.kaiming_uniform_(ak[k], a=math.sqrt(5))
                self.Ak[_key(p)] = nn.Parameter(ak)
                self.Bk[_key(p)] = nn.Parameter(torch.zeros(K, o, rb))

    def load_shared(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        """The shared LoRA from a trained adapter's PEFT tensors
        (``base_model.model.<path>.lora_A.weight`` / ``lora_B``), frozen: the residual then
        trains on top of it (same rank and alpha, so the same scale alpha / r)."""
        for paths in self.layers.values():
            for p in paths:
                for name, table in (("lora_A", self.A0), ("lora_B", self.B0)):
                    key = f"base_model.model.{p}.{name}.weight"
                    if key not in tensors:
                        raise UserError(f"{source}: no {key} (not an adapter of these layers)")
                    want = tuple(table[_key(p)].shape)
                    if tuple(tensors[key].shape) != want:
                        raise UserError(f"{source}: {key} has shape {tuple(tensors[key].shape)}, "
                                        f"wanted {want}")
                    with torch.no_grad():
                        table[_key(p)].copy_(tensors[key].to(table[_key(p)].dtype))
        for table in (self.A0, self.B0):
            for param in table.values():
                param.requires_grad_(False)

    def mixing(self, z: torch.Tensor) -> torch.Tensor:
        """(n, K): each code vector's weights of the basis adapters."""
        return self.mix(self.trunk(z))

    def from_mixing(self, w: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The factors of the adapters with mixing weights ``w`` (n, K)."""
        n = w.shape[0]
        out = {}
        for paths in self.layers.values():
            for p in paths:
                a0, b0 = self.A0[_key(p)], self.B0[_key(p)]
                ak, bk = self.Ak[_key(p)], self.Bk[_key(p)]                # (K, rb, in), (K, out, rb)
                mixed = (w[:, :, None, None] * ak[None]).flatten(1, 2)      # (n, K rb, in)
                A = torch.cat([a0[None].expand(n, -1, -1), mixed], 1)       # (n, rank, in)
                B = torch.cat([b0, bk.permute(1, 0, 2).flatten(1, 2)], 1)   # (out, rank)
                out[p] = (A, B[None].expand(n, -1, -1))
        return out

    def forward(self, z: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self.from_mixing(self.mixing(z))


def make_head(d_in: int, config: HeadConfig, shapes: ModuleShapes,
              layers: dict[str, list[str]]) -> nn.Module:
    cls = {"direct": DirectHead, "per_layer": PerLayerHead, "residual": ResidualHead}.get(config.kind)
    if cls is None:
        raise ValueError(f"unknown head {config.kind!r}; use direct, per_layer or residual")
    return cls(d_in, config, shapes, layers)
