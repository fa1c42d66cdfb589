"""A linear layer that applies a different LoRA update to each row of a batch.

    y[b] = base(x[b]) + scale[b] * (x[b] @ A[b].T) @ B[b].T

with ``A[b]`` of shape (r, in) and ``B[b]`` (out, r) taken from a bank of adapters by the
row's adapter index; index -1 means "no adapter" (scale 0). The update is two batched
matmuls and is differentiable in A and B (a hypernetwork can train through it).
"""
from __future__ import annotations

import torch
from torch import nn


class PerRowLoraLinear(nn.Module):
    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.A: torch.Tensor | None = None        # (n_rows, r, in): one A per batch row
        self.B: torch.Tensor | None = None        # (n_rows, out, r)
        self.scale: torch.Tensor | None = None    # (n_rows,), 0 for rows without adapter

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def set_rows(self, A: torch.Tensor | None, B: torch.Tensor | None,
                 scale: torch.Tensor | None) -> None:
        """Per-row factors for the next forward passes (None: the base layer only)."""
        self.A, self.B, self.scale = A, B, scale

    def select_rows(self, keep: torch.Tensor) -> None:
        """Keep only the rows ``keep`` (when the decode loop drops finished rows)."""
        if self.A is not None:
            self.A, self.B, self.scale = self.A[keep], self.B[keep], self.scale[keep]

    def forward(self, x: torch.Tensor) -> torch.Tensor:    # x: (batch, seq, in)
        y = self.base(x)                                    # (batch, seq, out)
        if self.A is None:
            return y
        if self.A.shape[0] != x.shape[0]:
            raise RuntimeError(f"per-row LoRA holds {self.A.shape[0]} rows, the batch has {x.shape[0]}")
        h = torch.bmm(x.to(self.A.dtype), self.A.transpose(1, 2))   # (batch, seq, r)
        delta = torch.bmm(h, self.B.transpose(1, 2))                # (batch, seq, out)
        return y + (delta * self.scale[:, None, None]).to(y.dtype)
