"""Configuration of per-row LoRA: which linear layers carry adapters, rank and scale."""
from __future__ import annotations

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

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.r}")
        if not self.target_modules:
            raise ValueError("LoRA needs at least one target module")

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def matches(self, module_path: str) -> bool:
        return module_path.rsplit(".", 1)[-1] in self.target_modules

    @classmethod
    def from_peft_config(cls, config: dict) -> "LoraSpec":
        targets = config.get("target_modules") or ()
        if isinstance(targets, str):
            raise ValueError(f"adapter target_modules is a regular expression ({targets!r}); "
                             f"only a list of module names is supported")
        if config.get("use_rslora") or config.get("use_dora"):
            raise ValueError("rsLoRA and DoRA adapters are not supported by per-row LoRA")
        return cls(r=int(config["r"]), alpha=float(config["lora_alpha"]),
                   target_modules=tuple(sorted(targets)))
