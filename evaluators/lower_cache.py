"""The frozen lower layers, computed once: with adapters on the top K decoder layers only
(``top_layers=K``), what enters layer ``L - K`` depends on the example's tokens alone. It
is computed once per example with the base model, when a training step first needs it,
and kept on disk (one float32 ``.npy`` file per (model, layer, example), under the user
cache), and every later step and epoch, and every method that trains on the example, runs
only the top K layers from it.

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
    epoch and run. Each example is computed alone and stored under a hash of (model
    revision, layer, its token ids), so its bytes never depend on which examples were
    computed with it, and every method that trains on an example (shared LoRA on all
    repositories, per-repository LoRA on one, Code2LoRA) computes it once between them."""

    def __init__(self, model, examples: list[dict], start: int, revision: str,
                 device: str = "cpu", directory: Path | None = None, progress: bool = False):
        self.start, self.model, self.examples, self.device = start, model, examples, device
        self.directory = Path(directory or cache_root() / "lower_layers")
        self.width = int(model.config.hidden_size)
        prefix = f"{revision}\0{start}\0{self.width}\0".encode()
        self.paths = []
        for e in examples:
            key = hashlib.sha256(prefix + np.asarray(e["input_ids"], dtype=np.int64).tobytes())
            key = key.hexdigest()[:32]
            self.paths.append(self.directory / key[:2] / f"{key}.npy")
        self.done = np.array([p.exists() for p in self.paths], dtype=bool)
        self.progress = progress

    @property
    def n_computed(self) -> int:
        return int(self.done.sum())

    def states(self, i: int) -> np.ndarray:
        """(tokens, hidden) float32: the cached inputs of layer ``start`` for example i."""
        self.fill([i])
        return np.load(self.paths[i])

    def fill(self, indices: list[int] | None = None) -> None:
        """Compute the examples ``indices`` (default: all) that are not on disk yet (each
        file is published whole, so an interrupted fill leaves no partial example)."""
        from tqdm import tqdm
        wanted = range(len(self.examples)) if indices is None else indices
        todo = []
        for i in dict.fromkeys(wanted):
            if not self.done[i]:
                self.done[i] = self.paths[i].exists()      # another run may have computed it
                if not self.done[i]:
                    todo.append(i)
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
                path = self.paths[i]
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
                with open(tmp, "wb") as fh:
                    np.save(fh, states[0].float().cpu().numpy())
                publish(tmp, path)
                self.done[i] = True
                bar.update(1)
        finally:
            bar.close()
            self.model.train(was_training)

    def batch(self, index: torch.Tensor, width: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """(rows, width, hidden) of the examples ``index``, right-padded with zeros (as the
        collator pads the tokens); examples not cached yet are computed first."""
        self.fill(index.tolist())
        rows = []
        for i in index.tolist():
            t = torch.from_numpy(np.load(self.paths[i]))
            if t.shape[0] < width:
                t = torch.cat([t, t.new_zeros(width - t.shape[0], t.shape[1])])
            rows.append(t)
        return torch.stack(rows).to(device=device, dtype=dtype)
