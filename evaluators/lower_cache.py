"""The frozen lower layers, computed once: with adapters on the top K decoder layers only
(``top_layers=K``), what enters layer ``L - K`` depends on the example's tokens alone. It
is computed once per example with the base model, when a training step first needs it,
and kept on disk (one memory-mapped float32 file per (model, examples, layer), under the
user cache), and every later step and epoch, and every method that trains on the same
examples, runs only the top K layers from it.

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
    """The inputs of layer ``start`` for ``examples`` (lists of token ids), on disk, each
    example computed the first time a batch asks for it (training that samples a few
    hundred of thousands of examples computes those only) and kept for every later step,
    epoch and run. Each example is computed alone, so its bytes never depend on which
    examples were computed with it."""

    def __init__(self, model, examples: list[dict], start: int, revision: str,
                 device: str = "cpu", directory: Path | None = None, progress: bool = False):
        self.start, self.model, self.examples, self.device = start, model, examples, device
        h = hashlib.sha256(f"{revision}\0{start}\0".encode())
        for e in examples:
            h.update(np.asarray(e["input_ids"], dtype=np.int64).tobytes() + b"\0")
        key = h.hexdigest()[:24]
        directory = directory or cache_root() / "lower_layers"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{key}.f32"
        self.done_path = directory / f"{key}.done"       # one byte per example: 1 once written
        lengths = np.array([len(e["input_ids"]) for e in examples], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        width = int(model.config.hidden_size)
        size = int(self.offsets[-1]) * width * 4
        if not self.path.exists() or self.path.stat().st_size != size \
                or not self.done_path.exists() or self.done_path.stat().st_size != len(examples):
            self._create(size, len(examples))
        self.data = np.memmap(self.path, dtype=np.float32, mode="r+",
                              shape=(int(self.offsets[-1]), width))
        self.done = np.memmap(self.done_path, dtype=np.uint8, mode="r+", shape=(len(examples),))
        self.progress = progress

    def _create(self, size: int, n: int) -> None:
        """An empty (sparse) data file and a zero done-map, each published whole."""
        for path, nbytes in ((self.path, size), (self.done_path, n)):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                fh.truncate(nbytes)
            publish(tmp, path)

    @property
    def n_computed(self) -> int:
        return int(self.done.sum())

    def fill(self, indices: list[int] | None = None) -> None:
        """Compute the examples ``indices`` (default: all) that are not on disk yet."""
        from tqdm import tqdm
        todo = [i for i in (range(len(self.examples)) if indices is None else indices)
                if not self.done[i]]
        if not todo:
            return
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=len(todo), desc="caching the lower layers", unit="example",
                   disable=not self.progress or len(todo) < 64, leave=False)
        try:
            for i in todo:
                ids = torch.tensor([self.examples[i]["input_ids"]], device=self.device)
                states = layer_inputs(self.model, ids, torch.ones_like(ids), self.start)
                a, b = int(self.offsets[i]), int(self.offsets[i + 1])
                self.data[a:b] = states[0].float().cpu().numpy()
                bar.update(1)
            self.data.flush()                   # the states before the flags that vouch for them
            self.done[todo] = 1
            self.done.flush()
        finally:
            bar.close()
            self.model.train(was_training)

    def batch(self, index: torch.Tensor, width: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """(rows, width, hidden) of the examples ``index``, right-padded with zeros (as the
        collator pads the tokens); examples not cached yet are computed first."""
        self.fill(index.tolist())
        rows = []
        for i in index.tolist():
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            t = torch.from_numpy(np.array(self.data[a:b]))
            if b - a < width:
                t = torch.cat([t, t.new_zeros(width - (b - a), t.shape[1])])
            rows.append(t)
        return torch.stack(rows).to(device=device, dtype=dtype)
