"""Configuration of per-row LoRA: which linear layers carry adapters, rank and scale."""
from __future__ import annotations

import re
from dataclasses import dataclass

# The publication's targets: every attention and MLP projection (SPEC section 9).
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSpec:
    """Rank ``r``, scale ``alpha / r`` (PEFT's default, no rsLoRA), target module names
    (matched against the last component of each linear layer's path)."""
    r: int = 16
    alpha: float = 32.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    # decoder layers that carry adapters (PEFT's ``layers_to_transform``); empty: every layer
    layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.r}")
        if not self.target_modules:
            raise ValueError("LoRA needs at least one target module")

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def matches(self, module_path: str) -> bool:
        if module_path.rsplit(".", 1)[-1] not in self.target_modules:
            return False
        if not self.layers:
            return True
        index = layer_index(module_path)
        return index is not None and index in self.layers

    @classmethod
    def from_peft_config(cls, config: dict) -> "LoraSpec":
        targets = config.get("target_modules") or ()
        if isinstance(targets, str):
            raise ValueError(f"adapter target_modules is a regular expression ({targets!r}); "
                             f"only a list of module names is supported")
        if config.get("use_rslora") or config.get("use_dora"):
            raise ValueError("rsLoRA and DoRA adapters are not supported by per-row LoRA")
        layers = config.get("layers_to_transform") or ()
        return cls(r=int(config["r"]), alpha=float(config["lora_alpha"]),
                   target_modules=tuple(sorted(targets)),
                   layers=tuple(sorted([layers] if isinstance(layers, int) else layers)))


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def layer_index(module_path: str) -> int | None:
    """The decoder layer a module path belongs to (``model.layers.11.self_attn.q_proj``)."""
    m = _LAYER.search(module_path)
    return int(m.group(1)) if m else None


def top_layers(model, k: int) -> tuple[int, ...]:
    """The indexes of the top ``k`` decoder layers of ``model`` (0: every layer, i.e. ())."""
    if k <= 0:
        return ()
    n = int(model.config.num_hidden_layers)
    if k > n:
        raise ValueError(f"top_layers={k}, but the model has {n} layers")
    return tuple(range(n - k, n))
