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
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

# One module type: its name and the (in, out) shape of the linear layers of that type.
ModuleShapes = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class HeadConfig:
    kind: Literal["direct", "per_layer"] = "direct"
    hidden: int = 256            # trunk width
    embed_dim: int = 64          # per_layer: layer and module-type embedding size
    r: int = 16
    alpha: float = 32.0

    def to_dict(self) -> dict:
        return asdict(self)


class _FactorProjections(nn.Module):
    """Per module type, h -> A (r, in) and h -> B (out, r), tanh-squashed and scaled."""

    def __init__(self, hidden: int, r: int, shapes: ModuleShapes):
        super().__init__()
        self.r, self.shapes = r, shapes
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

    def forward(self, t: str, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, o = self.shapes[t]                                              # h: (m, hidden)
        A = torch.tanh(self.to_A[t](h)) * self.log_scale_A[t].exp()        # (m, r * in)
        B = torch.tanh(self.to_B[t](h)) * self.log_scale_B[t].exp()        # (m, out * r)
        return A.view(-1, self.r, i), B.view(-1, o, self.r)


def _trunk(d_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())


class DirectHead(nn.Module):
    """One (A, B) per module type, shared by the layers of that type."""

    def __init__(self, d_in: int, config: HeadConfig, shapes: ModuleShapes,
                 layers: dict[str, list[str]]):
        super().__init__()
        self.layers = layers                       # module type -> module paths of that type
        self.trunk = _trunk(d_in, config.hidden)
        self.proj = _FactorProjections(config.hidden, config.r, shapes)

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
        self.trunk = _trunk(config.hidden + 2 * config.embed_dim, config.hidden)
        self.proj = _FactorProjections(config.hidden, config.r, shapes)

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


def make_head(d_in: int, config: HeadConfig, shapes: ModuleShapes,
              layers: dict[str, list[str]]) -> nn.Module:
    cls = {"direct": DirectHead, "per_layer": PerLayerHead}.get(config.kind)
    if cls is None:
        raise ValueError(f"unknown head {config.kind!r}; use direct or per_layer")
    return cls(d_in, config, shapes, layers)
