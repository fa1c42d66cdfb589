"""What generation and teacher-forced scoring share to reuse work across prompts: the
adapter groups prompts are ordered by, common token prefixes, and cropping a key/value
cache to one."""
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


def adapter_groups(adapters: list | None, n: int) -> list[int]:
    """Per row, its adapter's group: 0 for the base model, else the order in which the
    adapter object first appears (rows are sorted by group, then by token ids)."""
    first: dict[int, int] = {}
    return [first.setdefault(id(adapters[i]), len(first) + 1)
            if adapters is not None and adapters[i] is not None else 0 for i in range(n)]


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    return next((k for k in range(n) if a[k] != b[k]), n)
