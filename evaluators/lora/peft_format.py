"""Reading and writing LoRA adapters in the standard PEFT layout.

A PEFT adapter directory holds ``adapter_config.json`` and ``adapter_model.safetensors``
whose keys read ``base_model.model.<module path>.lora_A.weight`` (shape rank x in) and
``...lora_B.weight`` (out x rank), as ``peft`` itself writes them; it loads with
``peft.PeftModel.from_pretrained``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from repopeftbench.errors import UserError
from repopeftbench.io import atomic_write_bytes, canonical_json, read_json_file, read_safetensors

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def lora_config_dict(base_model: str, target_modules: list[str], rank: int, alpha: float,
                     dropout: float = 0.0, layers: tuple[int, ...] = ()) -> dict:
    """An ``adapter_config.json`` for a plain LoRA adapter of a causal LM (``layers``: the
    decoder layers that carry it, PEFT's ``layers_to_transform``; empty: all)."""
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
            "r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "bias": "none",
            "target_modules": sorted(target_modules), "fan_in_fan_out": False,
            "inference_mode": True, "use_rslora": False, "use_dora": False,
            "init_lora_weights": True, "modules_to_save": None,
            "layers_to_transform": sorted(layers) or None}


def save_peft_adapter(directory: str | os.PathLike, config: dict,
                      tensors: dict[str, Any]) -> Path:
    """Write a PEFT adapter directory (atomically per file); returns its path."""
    from safetensors.torch import save

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # a copy per key: generated adapters may share one tensor between layers
    contiguous = {k: v.detach().to("cpu").contiguous().clone() for k, v in sorted(tensors.items())}
    atomic_write_bytes(out / WEIGHTS_FILE, save(contiguous, metadata={"format": "pt"}))
    atomic_write_bytes(out / CONFIG_FILE, canonical_json(config).encode())
    return out


def find_adapter_dir(path: str, option: str = "init_adapter") -> Path:
    """The PEFT adapter directory an option names: the directory itself or its ``adapter/``
    (a shared-lora checkpoint)."""
    for d in (Path(path), Path(path) / "adapter"):
        if (d / CONFIG_FILE).is_file() and (d / WEIGHTS_FILE).is_file():
            return d
    raise UserError(f"{option}={path}: no PEFT adapter there ({CONFIG_FILE} and "
                    f"{WEIGHTS_FILE}, in it or in its adapter/)")


def check_same_lora(config: dict, r: int, alpha: float, target_modules, layers,
                    what: str) -> None:
    """Refuse an adapter (its ``adapter_config.json`` as a dict) that is not the LoRA of
    rank ``r``, ``alpha``, projections and decoder layers wanted (so that starting from it
    changes only the starting point); ``what`` names it in the error."""
    have = {"r": config.get("r"), "alpha": float(config.get("lora_alpha") or 0),
            "target_modules": sorted(config.get("target_modules") or []),
            "layers": sorted(config.get("layers_to_transform") or [])}
    want = {"r": r, "alpha": float(alpha), "target_modules": sorted(target_modules),
            "layers": sorted(layers)}
    wrong = [f"{k} {have[k]} (wanted {want[k]})" for k in have if have[k] != want[k]]
    if wrong:
        raise UserError(f"{what}: not this LoRA: " + "; ".join(wrong))


def load_peft_adapter(directory: str | os.PathLike) -> tuple[dict, dict[str, Any]]:
    """(config, tensors) of a PEFT adapter directory, with a clear error for a bad one."""
    d = Path(directory)
    cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
    for path in (cfg_path, w_path):
        if not path.exists():
            raise UserError(f"{d}: not a PEFT adapter directory ({path.name} is missing)")
    config = read_json_file(cfg_path, "adapter configuration")
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise UserError(f"{cfg_path}: peft_type "
                        f"{config.get('peft_type') if isinstance(config, dict) else None!r} is not LORA")
    return config, read_safetensors(w_path)


def _as_set(value: Any) -> Any:
    """A config entry compared as a set where it is a list: PEFT writes ``target_modules``
    in a set's order, which differs between processes (string hashing is randomised)."""
    return frozenset(value) if isinstance(value, (list, tuple)) else value


def _plain(config: dict, source: str, doing: str) -> None:
    if config.get("use_rslora") or config.get("use_dora") or config.get("rank_pattern") \
            or config.get("alpha_pattern"):
        raise UserError(f"{source or 'adapter'}: only plain LoRA adapters can be {doing} "
                        f"(no rslora, DoRA or per-module ranks)")


def _scale(config: dict) -> float:
    return float(config["lora_alpha"]) / int(config["r"])


def combine_peft_adapters(parts: list[tuple[float, dict, dict[str, Any]]],
                          source: str = "") -> tuple[dict, dict[str, Any]]:
    """(config, tensors) of the adapter whose weight update is exactly sum_i w_i dW_i for
    ``parts`` (w_i, config_i, tensors_i) of plain LoRA adapters of the same projections and
    layers (any ranks and alphas), with no SVD: the factors side by side,
    A = [A_1; ...; A_n], B = [c_1 B_1, ..., c_n B_n] with c_i = w_i s_i / s_1 (s = alpha / r),
    of rank sum r_i and the first adapter's scale. ``source`` names them in an error."""
    import torch

    if not parts:
        raise ValueError("combine_peft_adapters: no adapters")
    first = parts[0][1]
    what = ("target_modules", "layers_to_transform")
    for _, config, _ in parts:
        _plain(config, source, "combined")
        wrong = [k for k in what if _as_set(config.get(k)) != _as_set(first.get(k))]
        if wrong:
            raise UserError(f"{source or 'adapters'}: they differ in {', '.join(wrong)}")
    keys = sorted(parts[0][2])
    if any(sorted(t) != keys for _, _, t in parts[1:]):
        raise UserError(f"{source or 'adapters'}: their tensors differ in names")
    scale = _scale(first)
    tensors: dict[str, Any] = {}
    for key in keys:
        if key.endswith("lora_A.weight"):
            tensors[key] = torch.cat([t[key].float() for _, _, t in parts], 0)   # (sum r, in)
        elif key.endswith("lora_B.weight"):
            tensors[key] = torch.cat([t[key].float() * (w * _scale(c) / scale)
                                      for w, c, t in parts], 1)                   # (out, sum r)
        else:
            raise UserError(f"{source or 'adapters'}: {key} is not a LoRA factor")
    rank = sum(int(c["r"]) for _, c, _ in parts)
    return {**first, "r": rank, "lora_alpha": scale * rank}, tensors


def mean_peft_adapter(adapters: list[tuple[dict, dict[str, Any]]],
                      source: str = "") -> tuple[dict, dict[str, Any]]:
    """(config, tensors) of the adapter whose weight update is exactly the mean of the
    updates of ``adapters`` (each a (config, tensors) pair of one plain LoRA: the same
    projections, layers, rank r and alpha): ``combine_peft_adapters`` with weights 1 / n,
    of rank n r with alpha n alpha, so the scale alpha / r is unchanged. ``source`` names
    the adapters in an error."""
    if not adapters:
        raise ValueError("mean_peft_adapter: no adapters")
    first = adapters[0][0]
    what = ("r", "lora_alpha", "target_modules", "layers_to_transform", "use_rslora",
            "use_dora", "rank_pattern", "alpha_pattern")
    for config, _ in adapters[1:]:
        wrong = [k for k in what if _as_set(config.get(k)) != _as_set(first.get(k))]
        if wrong:
            raise UserError(f"{source or 'mean of adapters'}: they differ in {', '.join(wrong)}")
    _plain(first, source or "mean of adapters", "averaged")
    if len(adapters) == 1:
        return adapters[0]
    n = len(adapters)
    return combine_peft_adapters([(1 / n, c, t) for c, t in adapters], source)


def update_norms(config: dict, tensors: dict[str, Any]) -> dict[str, float]:
    """The Frobenius norm of each module's weight update (alpha / r) B A, keyed by its
    lora_A tensor's name, from r x r Gram matrices (never the full weight)."""
    out = {}
    for key in sorted(tensors):
        if key.endswith("lora_A.weight"):
            A = tensors[key].double()
            B = tensors[key[:-len("lora_A.weight")] + "lora_B.weight"].double()
            gram = float(((B.T @ B) * (A @ A.T)).sum())       # tr(B^T B A A^T)
            out[key] = _scale(config) * max(gram, 0.0) ** 0.5
    return out


def truncate_peft_adapter(config: dict, tensors: dict[str, Any], rank: int,
                          source: str = "") -> tuple[dict, dict[str, Any], dict[str, float]]:
    """(config, tensors, residual) of a plain LoRA adapter brought down to rank ``rank``:
    per module the best rank-``rank`` approximation of its update (alpha / r) B A, by the
    SVD of the small core of B's and A's QR factors (never the full weight), at the same
    scale alpha / r. ``residual`` is each module's ||dW - dW_rank|| (Frobenius; keyed by
    its lora_A tensor's name; all 0.0 when ``rank`` is at least the adapter's: it is
    returned as is)."""
    import torch

    if rank <= 0:
        raise ValueError("truncate_peft_adapter: rank must be positive")
    _plain(config, source, "truncated")
    r, scale = int(config["r"]), _scale(config)
    a_keys = [k for k in sorted(tensors) if k.endswith("lora_A.weight")]
    if rank >= r:
        return config, tensors, {k: 0.0 for k in a_keys}
    out: dict[str, Any] = {}
    residual: dict[str, float] = {}
    for key in a_keys:
        b_key = key[:-len("lora_A.weight")] + "lora_B.weight"
        if b_key not in tensors:
            raise UserError(f"{source or 'adapter'}: {key} has no lora_B")
        A, B = tensors[key].double(), tensors[b_key].double()        # (r, in), (out, r)
        qb, rb = torch.linalg.qr(B)                                  # B = qb rb
        qa, ra = torch.linalg.qr(A.T)                                # A = ra^T qa^T
        u, s, vh = torch.linalg.svd(rb @ ra.T)                       # B A = qb (u s vh) qa^T
        residual[key] = scale * float((s[rank:] ** 2).sum()) ** 0.5
        root = s[:rank].sqrt()
        out[b_key] = (qb @ u[:, :rank] * root).to(tensors[b_key].dtype)
        out[key] = (root[:, None] * (vh[:rank] @ qa.T)).to(tensors[key].dtype)
    if len(out) != len(tensors):
        raise UserError(f"{source or 'adapter'}: tensors that are not LoRA factors")
    return {**config, "r": rank, "lora_alpha": scale * rank}, out, residual


def leave_one_out_peft_adapter(mean: tuple[dict, dict[str, Any]], n: int,
                               one: tuple[dict, dict[str, Any]],
                               residual: dict[str, float] | None = None, source: str = ""
                               ) -> tuple[dict, dict[str, Any], float]:
    """(config, tensors, error) of the mean of ``n`` adapters without ``one`` of them, from
    their ``mean``: (n mean - one) / (n - 1), exactly, of rank r_mean + r_one. Built from a
    mean truncated to a low rank (``truncate_peft_adapter``, whose ``residual`` is passed
    here), every leave-one-out mean costs that rank plus one adapter's instead of (n - 1) r;
    ``error`` then bounds the relative error of every module's update,
    ||exact - served|| / ||exact|| <= (n / (n - 1)) residual / (||served|| - that), and is
    0.0 without ``residual``."""
    if n < 2:
        raise ValueError("leave_one_out_peft_adapter: needs at least two adapters")
    config, tensors = combine_peft_adapters([(n / (n - 1), *mean), (-1 / (n - 1), *one)], source)
    error = 0.0
    if residual:
        for key, norm in update_norms(config, tensors).items():
            off = n / (n - 1) * residual.get(key, 0.0)
            if off:
                error = max(error, off / (norm - off) if norm > off else float("inf"))
    return config, tensors, error
