"""Generation backends, chosen in one place (``make_backend``)."""
from __future__ import annotations

from repopeftbench.errors import UserError

from .base import (Adapter, AdapterWeights, GenerationBackend, GenerationConfig, Request,
                   adapter_key)

BACKENDS = ("hf", "vllm")

__all__ = ["Adapter", "AdapterWeights", "BACKENDS", "GenerationBackend", "GenerationConfig",
           "Request", "adapter_key", "make_backend"]


def make_backend(name: str, model_name: str, device: str, config: GenerationConfig,
                 progress: bool = True) -> GenerationBackend:
    """The backend ``name`` with ``model_name`` loaded on ``device``."""
    if name == "hf":
        from .hf import HFBackend
        return HFBackend.load(model_name, device, config, progress=progress)
    if name == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise UserError("the vllm backend needs the optional 'vllm' extra "
                            "(pip install 'repopeftbench[vllm]'), which is not installed") from None
        raise UserError("the vllm backend is not implemented yet; use --backend hf")
    raise UserError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
