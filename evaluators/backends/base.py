"""The generation backend interface: what the harness asks of an inference engine.

A backend turns requests (a prompt, and optionally the LoRA adapter to apply to that
row) into raw continuations under the decoding protocol of SPEC section 8. The Hugging
Face backend is the reference; other engines (vLLM) plug in behind the same interface.
Nothing here imports torch, so scoring and the plugin API work without it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Union


@dataclass(frozen=True)
class GenerationConfig:
    """The decoding protocol. ``batch_size=None`` lets the backend choose for the device."""
    max_new_tokens: int = 64
    max_input_tokens: int = 4096
    batch_size: int | None = None
    stop_at_newline: bool = True
    # Reuse the key/value cache of the previous prompt's longest common token prefix
    # (prompts are ordered so that those sharing a prefix are neighbours); at least
    # ``min_shared_tokens`` must be shared for the cache to be kept. The shared prefixes
    # are encoded one run of prompts at a time (prompts that are prefixes of the run's
    # last one but for ``max_tail_tokens`` at most), and up to max(``batch_size``,
    # ``decode_batch_size``) prompts are decoded together.
    reuse_prefix: bool = True
    min_shared_tokens: int = 8
    decode_batch_size: int = 8
    max_tail_tokens: int = 4

    # How the work is scheduled, not what is predicted (the prediction tests hold every
    # schedule to the per-task reference): left out of a run's cache key, like the
    # thread count. The older scheduling fields stay in it, so that caches remain valid.
    SCHEDULING_ONLY = ("decode_batch_size", "max_tail_tokens")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.SCHEDULING_ONLY}


@dataclass
class AdapterWeights:
    """A LoRA adapter held in memory: a PEFT ``adapter_config.json`` as a dict and its
    tensors keyed as PEFT writes them (``base_model.model.<module>.lora_A.weight``)."""
    name: str                       # identifies the adapter (e.g. repository or commit)
    config: dict
    tensors: dict[str, Any] = field(repr=False)


# A PEFT adapter directory, adapter weights in memory, or None for the base model.
Adapter = Union[str, Path, AdapterWeights, None]


@dataclass
class Request:
    """One generation: the prompt, and the adapter its row needs (None: the base model)."""
    prompt: str
    adapter: Adapter = None


def adapter_key(adapter: Adapter) -> str | None:
    """A hashable identity of an adapter, for grouping rows."""
    if adapter is None:
        return None
    if isinstance(adapter, AdapterWeights):
        return f"mem:{adapter.name}"
    return f"dir:{Path(adapter).resolve()}"


class GenerationBackend(ABC):
    """Generates raw continuations for requests, in order."""

    name: str = ""

    @staticmethod
    def default_batch_size(device: str) -> int:
        """Prompts per batch when the configuration leaves it open."""
        return 8 if device.startswith("cuda") else 1

    @abstractmethod
    def generate(self, requests: list[Request], desc: str = "generating",
                 on_result: Callable[[int, str], None] | None = None) -> list[str]:
        """Raw continuations (special tokens skipped), one per request, in order;
        ``on_result(i, text)`` is called as soon as request i is finished (the harness
        caches each finished task at once)."""
