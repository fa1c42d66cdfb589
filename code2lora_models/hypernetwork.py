"""Code2LoRA: a code vector in, a LoRA adapter for the frozen base model out.

    z (n, d_in) --standardise--> (n, d_in) --head--> {module path: A (n, r, in), B (n, out, r)}

Standardisation subtracts the mean code vector of the training repositories and divides
by their per-dimension spread. Repository embeddings of one language are all alike
(cosines near 1); without it the head sees nearly the same input for every repository,
which is one way its adapters collapse to one. The statistics are buffers fitted once
before training (``fit_input_stats``) and saved with the weights.

A checkpoint is ``hypernetwork.safetensors`` + ``hypernetwork.json`` (the configuration,
the module shapes, the base model and the encoder identity).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from evaluators.lora.config import DEFAULT_TARGETS, LoraSpec
from evaluators.lora.model import LoraAdapter
from repopeftbench.errors import UserError
from repopeftbench.io import atomic_write_text, read_json_file, read_safetensors

from .heads import HeadConfig, ModuleShapes, make_head

WEIGHTS = "hypernetwork.safetensors"
CONFIG = "hypernetwork.json"


@dataclass(frozen=True)
class HypernetConfig:
    head: HeadConfig = field(default_factory=HeadConfig)
    standardise: bool = True
    target_modules: tuple[str, ...] = DEFAULT_TARGETS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HypernetConfig":  # (checkpoints before an option: its default)
        return cls(head=HeadConfig(**d["head"]), standardise=d["standardise"],
                   target_modules=tuple(d["target_modules"]))


def module_layout(lora_layers: dict) -> tuple[ModuleShapes, dict[str, list[str]]]:
    """(module type -> (in, out), module type -> paths in layer order) of per-row LoRA layers."""
    shapes: ModuleShapes = {}
    layers: dict[str, list[str]] = {}
    for path, layer in lora_layers.items():
        t = path.rsplit(".", 1)[-1]
        shape = (layer.in_features, layer.out_features)
        if shapes.setdefault(t, shape) != shape:
            raise UserError(f"module type {t} has layers of different shapes; the direct head "
                            f"needs one shape per type")
        layers.setdefault(t, []).append(path)
    return shapes, layers


class Code2LoRA(nn.Module):
    def __init__(self, d_in: int, config: HypernetConfig, shapes: ModuleShapes,
                 layers: dict[str, list[str]]):
        super().__init__()
        self.d_in, self.config, self.shapes, self.layers = d_in, config, shapes, layers
        self.register_buffer("z_mean", torch.zeros(d_in))
        self.register_buffer("z_scale", torch.ones(d_in))
        self.head = make_head(d_in, config.head, shapes, layers)
        # a head of a larger rank (residual: r + basis x basis_r) keeps the scale alpha / r
        rank = getattr(self.head, "rank", config.head.r)
        self.spec = LoraSpec(rank, config.head.alpha * rank / config.head.r, tuple(sorted(shapes)))

    @torch.no_grad()
    def fit_input_stats(self, z: torch.Tensor) -> None:
        """Standardisation statistics from the training code vectors (n, d_in)."""
        if not self.config.standardise:
            return
        self.z_mean.copy_(z.mean(0))
        spread = z.std(0, unbiased=False) if len(z) > 1 else torch.ones_like(self.z_mean)
        self.z_scale.copy_(spread.clamp(min=1e-3 * float(spread.max().clamp(min=1e-8))))

    def standardised(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.z_mean) / self.z_scale

    def forward(self, z: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self.head(self.standardised(z))                             # z: (n, d_in)

    def scale(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_full((n,), self.spec.scaling)

    # ----------------------------------------------------------------------- export
    def adapters(self, z: torch.Tensor, names: list[str], base_model: str = "") -> list[LoraAdapter]:
        """Generated adapters as ``LoraAdapter`` objects (saved in the PEFT layout with
        ``.save``). With the direct head, the layers of a type share one tensor."""
        with torch.no_grad():
            factors = self(z)
        out = []
        for i, name in enumerate(names):
            A, B, shared = {}, {}, {}
            for path, (a, b) in factors.items():
                key = id(a)
                if key not in shared:      # one copy per generated tensor, shared by layers
                    shared[key] = (a[i].detach().float().cpu(), b[i].detach().float().cpu())
                A[path], B[path] = shared[key]
            out.append(LoraAdapter(self.spec, A, B, name, base_model or None))
        return out

    def save(self, directory: str | Path, extra: dict) -> None:
        from safetensors.torch import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = d / (WEIGHTS + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt"})
        tmp.replace(d / WEIGHTS)
        atomic_write_text(d / CONFIG, json.dumps({
            "d_in": self.d_in, "config": self.config.to_dict(),
            "shapes": {t: list(s) for t, s in self.shapes.items()}, "layers": self.layers,
            **extra}, indent=2, sort_keys=True))

    @staticmethod
    def read_config(directory: str | Path) -> dict:
        path = Path(directory) / CONFIG
        if not path.exists():
            raise UserError(f"{directory}: not a Code2LoRA checkpoint ({CONFIG} is missing)")
        return read_json_file(path, "Code2LoRA configuration")

    @classmethod
    def load(cls, directory: str | Path) -> "Code2LoRA":
        meta = cls.read_config(directory)
        net = cls(meta["d_in"], HypernetConfig.from_dict(meta["config"]),
                  {t: tuple(s) for t, s in meta["shapes"].items()}, meta["layers"])
        net.load_state_dict(read_safetensors(Path(directory) / WEIGHTS))
        return net
