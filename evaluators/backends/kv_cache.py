"""Key/value cache helpers shared by generation and teacher-forced scoring."""
from __future__ import annotations


def crop(cache, length: int) -> None:
    """Keep the first ``length`` positions of a key/value cache (any transformers version)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for layer in layers:
            if getattr(layer, "keys", None) is not None:
                layer.keys = layer.keys[..., :length, :]
                layer.values = layer.values[..., :length, :]
        return
    for store in (cache.key_cache, cache.value_cache):     # transformers < 4.56
        for j, t in enumerate(store):
            store[j] = t[..., :length, :]
