"""Reconstruction training (``objective=reconstruct``): the hypernetwork learns to
reproduce trained adapters, one per training repository (a per-repo-lora checkpoint's,
``targets=``), from the repository's vector, instead of learning through the frozen
model's loss (Text-to-LoRA's second training mode). No forward pass of the language model
is made, so it costs seconds to minutes once the target adapters exist.

The loss is the squared Frobenius distance of the generated weight updates to the
targets', relative to how far the targets are from the shared LoRA S (``init_shared``; the
zero update without it):

    loss = sum_rows sum_modules ||G_m(z) - T_m||^2 / sum_rows sum_modules ||T_m - S_m||^2

so 1.0 is what the shared adapter scores (or the base model) and 0.0 reproduces every
target. Distances come from the Gram matrices of the side-by-side factors
([B_G, -B_T] [A_G; A_T]); no update is formed.

Why: the per-repository adapter trained alone from the shared start sits above the mean
of the others on its repository's tasks, where the jointly trained residual does not, so
this asks the hypernetwork for those adapters directly.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from evaluators.lora.peft_format import load_peft_adapter
from repopeftbench.errors import UserError

from .hypernetwork import Code2LoRA
from .training import factor_sq_norm

INDEX = "adapters.json"       # a per-repo-lora checkpoint's repository -> adapter directory


def load_targets(checkpoint: str | Path, repos: list[str]) -> list[tuple[dict, dict]]:
    """(config, tensors) of the adapter of each of ``repos`` in a per-repo-lora checkpoint."""
    index_path = Path(checkpoint) / INDEX
    if not index_path.is_file():
        raise UserError(f"targets={checkpoint}: not a per-repo-lora checkpoint (no {INDEX})")
    index = json.loads(index_path.read_text())
    missing = [r for r in repos if r not in index]
    if missing:
        raise UserError(f"targets={checkpoint}: no adapter for {len(missing)} training "
                        f"repositories ({', '.join(missing[:3])})")
    return [load_peft_adapter(Path(checkpoint) / index[r]) for r in repos]


def _key(path: str) -> str:
    return path.replace(".", "__")


class Reconstruction(nn.Module):
    """The reconstruction loss of a hypernetwork on a batch of training items (``row``)."""

    def __init__(self, hyper: Code2LoRA, codes: nn.Module,
                 targets: list[tuple[dict, dict]], source: str):
        super().__init__()
        self.hyper, self.codes = hyper, codes
        self.paths = [p for paths in hyper.layers.values() for p in paths]
        for path in self.paths:
            A, B = [], []
            for config, tensors in targets:
                keys = [f"base_model.model.{path}.lora_{x}.weight" for x in "AB"]
                if any(k not in tensors for k in keys):
                    raise UserError(f"targets={source}: an adapter has no {keys[0]} (not an "
                                    f"adapter of these layers)")
                scale = float(config["lora_alpha"]) / int(config["r"])
                A.append(tensors[keys[0]].float())
                B.append(tensors[keys[1]].float() * scale)
            if len({a.shape for a in A}) > 1:
                raise UserError(f"targets={source}: the adapters differ in rank or shape at {path}")
            # not saved with the hypernetwork (persistent=False), moved with it to the device
            self.register_buffer(f"A_{_key(path)}", torch.stack(A), persistent=False)
            self.register_buffer(f"B_{_key(path)}", torch.stack(B), persistent=False)
        with torch.no_grad():
            self.register_buffer("denominator", self._spread(source), persistent=False)

    def _target(self, path: str, row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (getattr(self, f"A_{_key(path)}")[row], getattr(self, f"B_{_key(path)}")[row])

    def _spread(self, source: str) -> torch.Tensor:
        """(items,): sum over modules of ||T - S||^2, S the head's shared LoRA (or zero)."""
        n = getattr(self, f"A_{_key(self.paths[0])}").shape[0]
        row = torch.arange(n)
        head, s = self.hyper.head, self.hyper.spec.scaling
        total = torch.zeros(n)
        for path in self.paths:
            a, b = self._target(path, row)
            parts = [(a, b)]
            if hasattr(head, "A0"):                # the residual head's shared LoRA
                a0, b0 = head.A0[_key(path)], head.B0[_key(path)]
                parts.append((a0[None].expand(n, -1, -1), -s * b0[None].expand(n, -1, -1)))
            total += factor_sq_norm(parts)
        if (total <= 0).any():
            raise UserError(f"targets={source}: an adapter equals the shared one (nothing to "
                            f"reconstruct)")
        return total

    def distances(self, row: torch.Tensor) -> torch.Tensor:
        """(n,): sum over modules of ||G - T||^2 for the items ``row``."""
        factors = self.hyper(self.codes(row))
        s = self.hyper.spec.scaling
        total = None
        for path in self.paths:
            a, b = factors[path]
            ta, tb = self._target(path, row)
            d = factor_sq_norm([(a, s * b), (ta, -tb)])
            total = d if total is None else total + d
        return total

    def forward(self, row: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        return {"loss": self.distances(row).sum() / self.denominator[row].sum()}

    @torch.no_grad()
    def relative_errors(self) -> list[float]:
        """Per item, ||G - T||^2 / ||T - S||^2 (1.0: no better than the shared adapter)."""
        row = torch.arange(len(self.denominator), device=self.denominator.device)
        return (self.distances(row) / self.denominator).tolist()

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
