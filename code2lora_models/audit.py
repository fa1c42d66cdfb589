"""Do generated adapters differ? Pairwise cosine of the raw generated factors.

Each adapter is flattened to one vector: every generated A and B (a tensor shared by the
layers of a module type, with the direct head, counts once). ``mean`` is the mean raw
cosine over pairs, as the independent audit reported it (0.998 across repositories for
the published checkpoints); ``centred_mean`` is the same after subtracting the mean
adapter, which shows whether what differs is more than noise around one shared adapter.
"""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def flat_adapters(hyper, z: torch.Tensor) -> torch.Tensor:
    """(n, D) raw generated factors of the code vectors ``z`` (n, d_in)."""
    factors = hyper(z)
    seen, parts = set(), []
    for path in sorted(factors):
        for t in factors[path]:
            if id(t) not in seen:
                seen.add(id(t))
                parts.append(t.reshape(len(z), -1).float())
    return torch.cat(parts, 1)


def _pairwise(v: torch.Tensor) -> np.ndarray:
    unit = v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos = (unit @ unit.T).cpu().numpy()
    return cos[np.triu_indices(len(v), k=1)]


def adapter_cosine(bundle, z: torch.Tensor, max_items: int = 64) -> dict:
    """Raw and centred pairwise cosine of the adapters of up to ``max_items`` code vectors
    (evenly spaced over ``z``)."""
    n = len(z)
    if n < 2:
        return {"n_adapters": n, "mean": float("nan"), "min": float("nan"),
                "max": float("nan"), "centred_mean": float("nan")}
    pick = np.unique(np.linspace(0, n - 1, min(n, max_items)).round().astype(int))
    v = flat_adapters(bundle.hyper, z[torch.as_tensor(pick)])
    raw = _pairwise(v)
    centred = _pairwise(v - v.mean(0, keepdim=True))
    return {"n_adapters": int(len(pick)), "mean": float(raw.mean()), "min": float(raw.min()),
            "max": float(raw.max()), "centred_mean": float(centred.mean())}
