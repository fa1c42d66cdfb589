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


def distinct_pairs(factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, str]:
    """Module path -> the first path (in sorted order) holding the same generated (A, B):
    with the direct head, the layers of a module type share one pair."""
    owner: dict[int, str] = {}
    return {path: owner.setdefault(id(factors[path][0]), path) for path in sorted(factors)}


def flat_adapters(factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """(n, D) the raw generated factors of n adapters, each distinct pair once."""
    return torch.cat([t.reshape(len(t), -1).float()
                      for path, first in distinct_pairs(factors).items() if path == first
                      for t in factors[path]], 1)


def update_gram(factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """(n, n) Frobenius inner products of the weight updates B A of n adapters, summed over
    module paths (each distinct pair once), from r x r products only."""
    gram = None
    for path, first in distinct_pairs(factors).items():
        if path != first:
            continue
        a, b = (t.double() for t in factors[path])                 # (n, r, in), (n, out, r)
        aa = torch.einsum("arx,bsx->abrs", a, a)                   # A_i A_j^T   (n, n, r, r)
        bb = torch.einsum("aor,bos->abrs", b, b)                   # B_i^T B_j   (n, n, r, r)
        g = (aa * bb).sum((2, 3))
        gram = g if gram is None else gram + g
    assert gram is not None, "no generated factors"
    return gram


def _pair_cosines(gram: torch.Tensor) -> np.ndarray:
    """Cosines of the distinct pairs (i < j) of a Gram matrix."""
    norm = gram.diagonal().clamp(min=1e-30).sqrt()
    cos = (gram / norm[:, None] / norm[None, :]).cpu().numpy()
    return cos[np.triu_indices(len(gram), k=1)]


def _centre(gram: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of the same vectors less their mean."""
    return gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()


@torch.no_grad()
def adapter_cosine(bundle, z: torch.Tensor, max_items: int = 64) -> dict:
    """Raw and centred pairwise cosine of the adapters of up to ``max_items`` code vectors
    (evenly spaced over ``z``), of their factors and of their weight updates."""
    n = len(z)
    names = ("mean", "min", "max", "centred_mean")
    if n < 2:
        return {"n_adapters": n, **{k: float("nan") for k in names},
                **{f"update_{k}": float("nan") for k in names}}
    pick = np.unique(np.linspace(0, n - 1, min(n, max_items)).round().astype(int))
    factors = bundle.hyper(z[torch.as_tensor(pick)])
    v = flat_adapters(factors).double()
    out: dict = {"n_adapters": int(len(pick))}
    for prefix, gram in (("", v @ v.T), ("update_", update_gram(factors))):
        raw = _pair_cosines(gram)
        out.update({f"{prefix}mean": float(raw.mean()), f"{prefix}min": float(raw.min()),
                    f"{prefix}max": float(raw.max()),
                    f"{prefix}centred_mean": float(_pair_cosines(_centre(gram)).mean())})
    return out
