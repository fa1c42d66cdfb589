"""Training a hypernetwork through the frozen model, with the shared training module.

Each training row carries the index of its item (a repository for Static, a (repository,
commit) for Evo). ``HyperLM.forward`` turns the batch's items into code vectors, generates
one adapter per row, puts them into the per-row LoRA layers (``PerRowLora.set_batch``,
differentiable) and returns the completion-only cross-entropy. Batches mix repositories,
so one optimizer step sees several generated adapters.

Against collapse (every repository getting the same adapter), besides the input
standardisation of the hypernetwork: ``contrastive > 0`` adds a hinge that asks each row
to fit its tasks better with its own adapter than with the adapter of another row of the
batch from a different item:  λ · mean(relu(margin + CE_own - CE_other)). It costs a
second forward pass.

Only the hypernetwork is trained and checkpointed (the base model stays frozen and is
not written into ``Trainer`` checkpoints).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import Trainer

from evaluators.lora.model import PerRowLora
from evaluators.training import IGNORE, target_losses
from repopeftbench.io import read_safetensors

from .evo import DiffGRU
from .hypernetwork import Code2LoRA

TRAINABLE_FILE = "hypernetwork_trainable.safetensors"


class StaticCodes(nn.Module):
    """Item index -> its repository vector (a fixed table)."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)                               # (items, d)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.table[rows]                                            # (n, d)


class LearnedCodes(nn.Module):
    """Item index -> a vector learned with the hypernetwork (encoder=table)."""

    def __init__(self, n: int, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(n, dim, generator=g))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.table[rows]


class EvoCodes(nn.Module):
    """Item index -> the GRU state after that (repository, commit position)."""

    def __init__(self, gru: DiffGRU, seqs: dict[str, torch.Tensor], items: list[tuple[str, int]]):
        super().__init__()
        self.gru = gru
        self.seqs, self.items = seqs, items          # diff vectors per repository (not saved)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.gru.states_for(self.seqs, [self.items[i] for i in rows.tolist()])


def row_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed token cross-entropy, token count) per row, next-token shifted."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]                 # (n, t-1, V), (n, t-1)
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE,
                                     reduction="none")                     # (n, t-1)
    return ce.sum(1), (labels != IGNORE).sum(1)


class HyperLM(nn.Module):
    def __init__(self, lm: nn.Module, lora: PerRowLora, hyper: Code2LoRA, codes: nn.Module,
                 contrastive: float = 0.0, margin: float = 0.1, update_l2: float = 0.0):
        super().__init__()
        self.lm, self.lora, self.hyper, self.codes = lm, lora, hyper, codes
        self.contrastive, self.margin, self.update_l2 = contrastive, margin, update_l2
        self.lower_cache = None      # a LowerLayerCache (top_layers): run the layers above it
        for p in lm.parameters():
            p.requires_grad_(False)

    def _set_factors(self, factors: dict, order: torch.Tensor | None = None) -> None:
        A = {p: (a if order is None else a[order]) for p, (a, b) in factors.items()}
        B = {p: (b if order is None else b[order]) for p, (a, b) in factors.items()}
        first = next(iter(A.values()))
        self.lora.set_batch(A, B, self.hyper.scale(first.shape[0], first))

    def forward(self, input_ids, attention_mask, labels, row, index=None):
        z = self.codes(row)                                                # (n, d)
        factors = self.hyper(z)                                            # path -> (A, B)
        self._set_factors(factors)
        hidden, start = None, 0
        if self.lower_cache is not None and index is not None:
            ref = next(self.lm.parameters())
            hidden = self.lower_cache.batch(index, input_ids.shape[1], ref.dtype, ref.device)
            start = self.lower_cache.start
        own, count = target_losses(self.lm, input_ids, attention_mask, labels, hidden, start)
        loss = own.sum() / count.sum().clamp(min=1)
        other_row = _other_rows(row)
        if self.contrastive > 0 and other_row is not None:
            # the other item's adapter is a fixed reference: the hinge is met by improving
            # the own adapter, never by making the other one worse
            self._set_factors({p: (a.detach(), b.detach()) for p, (a, b) in factors.items()},
                              other_row)
            other, _ = target_losses(self.lm, input_ids, attention_mask, labels, hidden, start)
            per_tok = count.clamp(min=1)
            hinge = torch.relu(self.margin + own / per_tok - other / per_tok)
            loss = loss + self.contrastive * hinge.mean()
        if self.update_l2 > 0:
            loss = loss + self.update_l2 * update_sq_norm(factors, self.hyper.spec.scaling).mean()
        self.lora.clear()
        return {"loss": loss}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                if not k.startswith("lm.")}


def factor_sq_norm(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """(n,): ||sum_i B_i A_i||^2 for factors A_i (n, k_i, in), B_i (n, out, k_i), from the
    Gram matrices of the factors side by side, sum((B^T B) * (A A^T)), without forming B A."""
    A = torch.cat([a for a, _ in parts], 1) if len(parts) > 1 else parts[0][0]
    B = torch.cat([b for _, b in parts], 2) if len(parts) > 1 else parts[0][1]
    return ((B.transpose(1, 2) @ B) * (A @ A.transpose(1, 2))).sum((1, 2))


def update_sq_norm(factors: dict, scaling: float) -> torch.Tensor:
    """(n,): per row, the squared Frobenius norm of the generated weight update summed over
    the module paths, ||s B A||^2."""
    total = None
    for a, b in factors.values():                                       # (n, r, in), (n, out, r)
        term = factor_sq_norm([(a, b)])
        total = term if total is None else total + term
    return total * scaling ** 2


def _other_rows(row: torch.Tensor) -> torch.Tensor | None:
    """For each row, a row of the batch with a different item (None: one item only)."""
    items = row.tolist()
    if len(set(items)) < 2:
        return None
    n = len(items)
    out = []
    for i in range(n):
        j = next(((i + s) % n for s in range(1, n) if items[(i + s) % n] != items[i]))
        out.append(j)
    return torch.tensor(out, device=row.device)


class HyperTrainer(Trainer):
    """``Trainer`` that checkpoints the hypernetwork only (not the frozen base model)."""

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        save_file(self.model.trainable_state_dict(), os.path.join(output_dir, TRAINABLE_FILE),
                  metadata={"format": "pt"})

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        state = read_safetensors(Path(resume_from_checkpoint) / TRAINABLE_FILE)
        missing = (model or self.model).load_state_dict(state, strict=False)
        bad = [k for k in missing.missing_keys if not k.startswith("lm.")]
        if bad or missing.unexpected_keys:
            raise RuntimeError(f"{resume_from_checkpoint}: checkpoint does not match the "
                               f"hypernetwork ({(bad + missing.unexpected_keys)[:3]})")
