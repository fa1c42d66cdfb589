"""The frozen lower layers, computed once: with adapters on the top K decoder layers only
(``top_layers=K``), what enters layer ``L - K`` depends on the example's tokens alone. It
is computed once per example with the base model and kept on disk (one memory-mapped
float32 file per (model, examples, layer), under the user cache), and every training step
and epoch, and every method that trains on the same examples, runs only the top K layers
from it.

``top_forward`` runs a causal LM from such hidden states: the decoder's layer list is cut
to its top layers for the call and the states are given as ``inputs_embeds``, so the
model's own code computes the positions, the causal mask, the final norm and the head.
(Decoder-only models whose ``get_decoder()`` keeps its blocks in ``.layers``: Llama,
Qwen2, Mistral, SmolLM2 and their kind.)
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from repopeftbench.io import cache_root, publish


class _Reached(Exception):
    """Raised by the hook once the wanted layer's input is captured (skips the rest)."""


def _decoder(model) -> nn.Module:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else inner.model
    if not isinstance(getattr(decoder, "layers", None), nn.ModuleList):
        raise ValueError(f"{type(inner).__name__}: its decoder keeps no .layers list; the "
                         f"lower-layer cache does not apply (use top_layers=0)")
    return decoder


@torch.no_grad()
def layer_inputs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int
                 ) -> torch.Tensor:
    """(batch, seq, hidden): the hidden states entering decoder layer ``start``."""
    layer = _decoder(model).layers[start]
    got: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        got.append(args[0] if args else kwargs["hidden_states"])
        raise _Reached

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask)
    except _Reached:
        pass
    finally:
        handle.remove()
    return got[0]


def top_forward(model, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, **kwargs):
    """The model's output from ``hidden`` entering layer ``start`` (layers below skipped)."""
    decoder = _decoder(model)
    full = decoder.layers
    decoder.layers = nn.ModuleList(list(full)[start:])
    try:
        return model(inputs_embeds=hidden, attention_mask=attention_mask, **kwargs)
    finally:
        decoder.layers = full


class LowerLayerCache:
    """The inputs of layer ``start`` for ``examples`` (lists of token ids), on disk."""

    BATCH = 8                    # examples per forward pass while the cache is built

    def __init__(self, model, examples: list[dict], start: int, revision: str,
                 device: str = "cpu", directory: Path | None = None, progress: bool = False):
        self.start = start
        h = hashlib.sha256(f"{revision}\0{start}\0".encode())
        for e in examples:
            h.update(np.asarray(e["input_ids"], dtype=np.int64).tobytes() + b"\0")
        key = h.hexdigest()[:24]
        directory = directory or cache_root() / "lower_layers"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{key}.f32"
        lengths = np.array([len(e["input_ids"]) for e in examples], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        width = int(model.config.hidden_size)
        if not self.path.exists() or self.path.stat().st_size != int(self.offsets[-1]) * width * 4:
            self._build(model, examples, width, device, progress)
        self.data = np.memmap(self.path, dtype=np.float32, mode="r",
                              shape=(int(self.offsets[-1]), width))

    def _build(self, model, examples: list[dict], width: int, device: str, progress: bool) -> None:
        from tqdm import tqdm
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        out = np.memmap(tmp, dtype=np.float32, mode="w+", shape=(int(self.offsets[-1]), width))
        was_training = model.training
        model.eval()
        # examples of similar length together, right-padded: with causal attention a real
        # token never sees the padding after it
        order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
        bar = tqdm(total=len(examples), desc="caching the lower layers", unit="example",
                   disable=not progress, leave=False)
        try:
            for at in range(0, len(order), self.BATCH):
                idx = order[at:at + self.BATCH]
                width = max(len(examples[i]["input_ids"]) for i in idx)
                ids = torch.zeros((len(idx), width), dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, i in enumerate(idx):
                    n = len(examples[i]["input_ids"])
                    ids[r, :n] = torch.tensor(examples[i]["input_ids"])
                    mask[r, :n] = 1
                states = layer_inputs(model, ids.to(device), mask.to(device), self.start)
                for r, i in enumerate(idx):
                    n = int(self.offsets[i + 1] - self.offsets[i])
                    out[self.offsets[i]:self.offsets[i + 1]] = states[r, :n].float().cpu().numpy()
                bar.update(len(idx))
            out.flush()
            del out
            publish(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            bar.close()
            model.train(was_training)

    def batch(self, index: torch.Tensor, width: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """(rows, width, hidden) of the examples ``index``, right-padded with zeros (as the
        collator pads the tokens)."""
        rows = []
        for i in index.tolist():
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            t = torch.from_numpy(np.array(self.data[a:b]))
            if b - a < width:
                t = torch.cat([t, t.new_zeros(width - (b - a), t.shape[1])])
            rows.append(t)
        return torch.stack(rows).to(device=device, dtype=dtype)
