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


def mean_peft_adapter(adapters: list[tuple[dict, dict[str, Any]]],
                      source: str = "") -> tuple[dict, dict[str, Any]]:
    """(config, tensors) of the adapter whose weight update is exactly the mean of the
    updates of ``adapters`` (each a (config, tensors) pair of one plain LoRA: the same
    projections, layers, rank r and alpha), with no SVD: the factors side by side,
    A = [A_1; ...; A_n] and B = [B_1, ..., B_n] / n, of rank n r with alpha n alpha, so the
    scale alpha / r and each update (alpha / r) B_i A_i are unchanged and the sum is the
    mean. ``source`` names the adapters in an error."""
    import torch

    if not adapters:
        raise ValueError("mean_peft_adapter: no adapters")
    first = adapters[0][0]
    what = ("r", "lora_alpha", "target_modules", "layers_to_transform", "use_rslora",
            "use_dora", "rank_pattern", "alpha_pattern")
    shape = {k: first.get(k) for k in what}
    for config, _ in adapters[1:]:
        wrong = [k for k in what if config.get(k) != shape[k]]
        if wrong:
            raise UserError(f"{source or 'mean of adapters'}: they differ in {', '.join(wrong)}")
    if first.get("use_rslora") or first.get("use_dora") or first.get("rank_pattern") \
            or first.get("alpha_pattern"):
        raise UserError(f"{source or 'mean of adapters'}: only plain LoRA adapters can be "
                        f"averaged this way (no rslora, DoRA or per-module ranks)")
    keys = sorted(adapters[0][1])
    if any(sorted(t) != keys for _, t in adapters[1:]):
        raise UserError(f"{source or 'mean of adapters'}: their tensors differ in names")
    n = len(adapters)
    tensors: dict[str, Any] = {}
    for key in keys:
        parts = [t[key].float() for _, t in adapters]
        if key.endswith("lora_A.weight"):
            tensors[key] = torch.cat(parts, 0)                 # (n r, in)
        elif key.endswith("lora_B.weight"):
            tensors[key] = torch.cat(parts, 1) / n             # (out, n r)
        else:
            raise UserError(f"{source or 'mean of adapters'}: {key} is not a LoRA factor")
    config = {**first, "r": int(first["r"]) * n, "lora_alpha": float(first["lora_alpha"]) * n}
    return config, tensors
