"""Do generated adapters differ? Pairwise cosine of the raw generated factors, and of the
weight updates they make.

Each adapter is flattened to one vector: every generated A and B (a tensor shared by the
layers of a module type, with the direct head, counts once). ``mean`` is the mean raw
cosine over pairs, as the independent audit reported it (0.998 across repositories for
the published checkpoints); ``centred_mean`` is the same after subtracting the mean
adapter, which shows whether what differs is more than noise around one shared adapter.

Factors can mislead: (A, B) and (-A, -B) make the same update B A, and a hypernetwork is
free to generate either, so two adapters with cosine -1 may do the same thing (seen with
Code2LoRA-Evo). ``update_*`` is the cosine of the updates themselves, sum over modules of
<B_i A_i, B_j A_j> (computed from r x r products, never forming B A), which no
reparametrisation of the factors changes.
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


@torch.no_grad()
def update_gram(hyper, z: torch.Tensor) -> torch.Tensor:
    """(n, n) Frobenius inner products of the weight updates B A of the code vectors ``z``,
    summed over module paths (a factor pair shared by several layers counts once)."""
    factors = hyper(z)
    seen: set[int] = set()
    gram = torch.zeros(len(z), len(z), dtype=torch.float64)
    for path in sorted(factors):
        a, b = factors[path]                                       # (n, r, in), (n, out, r)
        if id(a) in seen:
            continue
        seen.add(id(a))
        a, b = a.double(), b.double()
        aa = torch.einsum("arx,bsx->abrs", a, a)                   # A_i A_j^T   (n, n, r, r)
        bb = torch.einsum("aor,bos->abrs", b, b)                   # B_i^T B_j   (n, n, r, r)
        gram += (aa * bb).sum((2, 3))
    return gram


def _pairwise(v: torch.Tensor) -> np.ndarray:
    unit = v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos = (unit @ unit.T).cpu().numpy()
    return cos[np.triu_indices(len(v), k=1)]


def adapter_cosine(bundle, z: torch.Tensor, max_items: int = 64) -> dict:
    """Raw and centred pairwise cosine of the adapters of up to ``max_items`` code vectors
    (evenly spaced over ``z``)."""
    n = len(z)
    if n < 2:
        return {"n_adapters": n, **{k: float("nan") for k in (
            "mean", "min", "max", "centred_mean", "update_mean", "update_min", "update_max",
            "update_centred_mean")}}
    pick = np.unique(np.linspace(0, n - 1, min(n, max_items)).round().astype(int))
    v = flat_adapters(bundle.hyper, z[torch.as_tensor(pick)])
    raw = _pairwise(v)
    centred = _pairwise(v - v.mean(0, keepdim=True))
    gram = update_gram(bundle.hyper, z[torch.as_tensor(pick)])
    norm = gram.diagonal().clamp(min=1e-30).sqrt()
    cos = (gram / norm[:, None] / norm[None, :]).numpy()[np.triu_indices(len(pick), k=1)]
    # centred: <U_i - M, U_j - M> with M the mean update, from the same Gram matrix
    g = gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()
    cn = g.diagonal().clamp(min=1e-30).sqrt()
    centred_u = (g / cn[:, None] / cn[None, :]).numpy()[np.triu_indices(len(pick), k=1)]
    return {"n_adapters": int(len(pick)), "mean": float(raw.mean()), "min": float(raw.min()),
            "max": float(raw.max()), "centred_mean": float(centred.mean()),
            "update_mean": float(cos.mean()), "update_min": float(cos.min()),
            "update_max": float(cos.max()), "update_centred_mean": float(centred_u.mean())}
