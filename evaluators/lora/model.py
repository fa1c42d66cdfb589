"""Wiring per-row LoRA into a Hugging Face model, and adapters in PEFT's key layout.

``PerRowLora(model, spec)`` replaces each target linear layer once by a
``PerRowLoraLinear``; ``set_adapters([a0, None, a1, ...])`` then gives every row of the
next batch its own adapter (None: the base model), and ``select_rows(keep)`` follows the
decode loop when it drops finished rows. Adapters of different ranks share a batch (the
smaller ones are zero-padded, which adds nothing).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from repopeftbench.errors import UserError

from .config import LoraSpec
from .layer import PerRowLoraLinear
from .peft_format import lora_config_dict, load_peft_adapter, save_peft_adapter

_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


@dataclass
class LoraAdapter:
    """One adapter: per module path, A (r, in) and B (out, r), with its rank and alpha."""
    spec: LoraSpec
    A: dict[str, torch.Tensor] = field(repr=False)
    B: dict[str, torch.Tensor] = field(repr=False)
    name: str = ""
    base_model: str | None = None

    @classmethod
    def from_peft_tensors(cls, config: dict, tensors: dict[str, torch.Tensor], name: str = "",
                          source: str = "adapter") -> "LoraAdapter":
        try:
            spec = LoraSpec.from_peft_config(config)
        except (KeyError, ValueError) as exc:
            raise UserError(f"{source}: unsupported adapter config ({exc})") from None
        A: dict[str, torch.Tensor] = {}
        B: dict[str, torch.Tensor] = {}
        for key, value in tensors.items():
            m = _KEY.match(key)
            if m is None:
                raise UserError(f"{source}: unexpected tensor {key!r} (not a LoRA A/B weight "
                                f"in PEFT's layout)")
            (A if m["ab"] == "A" else B)[m["path"]] = value
        if set(A) != set(B):
            raise UserError(f"{source}: modules with only one of lora_A/lora_B: "
                            f"{sorted(set(A) ^ set(B))[:3]}")
        return cls(spec, A, B, name, config.get("base_model_name_or_path"))

    @classmethod
    def load(cls, directory: str | Path) -> "LoraAdapter":
        config, tensors = load_peft_adapter(directory)
        return cls.from_peft_tensors(config, tensors, name=str(directory), source=str(directory))

    def peft_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for path in sorted(self.A):
            out[f"base_model.model.{path}.lora_A.weight"] = self.A[path]
            out[f"base_model.model.{path}.lora_B.weight"] = self.B[path]
        return out

    def peft_config(self) -> dict:
        return lora_config_dict(self.base_model or "", list(self.spec.target_modules),
                                self.spec.r, self.spec.alpha, layers=self.spec.layers)

    def save(self, directory: str | Path) -> Path:
        """Write the adapter in the PEFT layout (loads with ``PeftModel.from_pretrained``);
        its ``base_model_name_or_path`` is one ``from_pretrained`` resolves (an offline
        alias is written as its converted local directory)."""
        from ..models import loadable_base_model
        config = self.peft_config()
        config["base_model_name_or_path"] = loadable_base_model(self.base_model) or ""
        return save_peft_adapter(directory, config, self.peft_tensors())


def inject(model: nn.Module, spec: LoraSpec) -> dict[str, PerRowLoraLinear]:
    """Replace every target ``nn.Linear`` of ``model`` by a per-row LoRA layer (once)."""
    layers: dict[str, PerRowLoraLinear] = {}
    for path, module in list(model.named_modules()):
        if isinstance(module, PerRowLoraLinear):
            layers[path] = module
            continue
        if not isinstance(module, nn.Linear) or not spec.matches(path):
            continue  # (a wrapped layer's inner ".base" never matches a target name)
        parent_path, _, child = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        wrapped = PerRowLoraLinear(module)
        setattr(parent, child, wrapped)
        layers[path] = wrapped
    if not layers:
        raise UserError(f"the model has no linear layer named any of {', '.join(spec.target_modules)}")
    return layers


class PerRowLora:
    """A Hugging Face model whose target layers take one adapter per batch row."""

    def __init__(self, model: nn.Module, spec: LoraSpec = LoraSpec()):
        self.model, self.spec = model, spec
        self.layers = inject(model, spec)

    def check(self, adapter: LoraAdapter) -> None:
        """A clear error when an adapter does not fit this model."""
        src = adapter.name or "adapter"
        unknown = sorted(set(adapter.A) - set(self.layers))
        if unknown:
            raise UserError(f"{src}: module {unknown[0]} is not a LoRA target of this model "
                            f"(was the adapter trained on another base model?)")
        for path, a in adapter.A.items():
            layer, b = self.layers[path], adapter.B[path]
            if a.shape[1] != layer.in_features or b.shape[0] != layer.out_features \
                    or a.shape[0] != b.shape[1]:
                raise UserError(f"{src}: {path} has A {tuple(a.shape)} and B {tuple(b.shape)}, but "
                                f"the model's layer is {layer.in_features} -> {layer.out_features} "
                                f"(another base model?)")

    def set_adapters(self, adapters: list[LoraAdapter | None]) -> None:
        """One adapter, or None for the base model, per row of the next batch."""
        for a in adapters:
            if a is not None:
                self.check(a)
        if all(a is None for a in adapters):
            self.clear()
            return
        n = len(adapters)
        r = max(a.spec.r for a in adapters if a is not None)
        scale = torch.tensor([a.spec.scaling if a is not None else 0.0 for a in adapters])
        for path, layer in self.layers.items():
            weight = layer.base.weight
            A = weight.new_zeros((n, r, layer.in_features))
            B = weight.new_zeros((n, layer.out_features, r))
            for i, a in enumerate(adapters):
                if a is not None and path in a.A:
                    A[i, :a.spec.r] = a.A[path].to(A)
                    B[i, :, :a.spec.r] = a.B[path].to(B)
            layer.set_rows(A, B, scale.to(weight.device, weight.dtype))

    def set_batch(self, A: dict[str, torch.Tensor], B: dict[str, torch.Tensor],
                  scale: torch.Tensor) -> None:
        """Per-row factors given directly, e.g. generated by a hypernetwork (gradients flow):
        ``A[path]`` (n, r, in), ``B[path]`` (n, out, r), ``scale`` (n,). Layers not named
        run without adapter."""
        for path, layer in self.layers.items():
            if path in A:
                layer.set_rows(A[path], B[path], scale)
            else:
                layer.set_rows(None, None, None)

    def select_rows(self, keep: torch.Tensor) -> None:
        for layer in self.layers.values():
            layer.select_rows(keep)

    def clear(self) -> None:
        for layer in self.layers.values():
            layer.set_rows(None, None, None)
