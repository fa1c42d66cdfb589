"""Generation backends, found through a registry like methods (``BACKENDS``: a name and
where its class lives, imported only when chosen, so an engine that is not installed
costs nothing until asked for) and made in one place (``make_backend``). Every backend
follows the decoding protocol of ``base.py``; a backend's own settings (scheduling,
memory) are its ``--backend-option``s, not the protocol's."""
from __future__ import annotations

import importlib

from repopeftbench.errors import UserError

from .base import (Adapter, AdapterWeights, GenerationBackend, GenerationConfig, Request,
                   adapter_key)

BACKENDS: dict[str, str] = {
    "hf": "evaluators.backends.hf:HFBackend",          # the reference: transformers
    "vllm": "evaluators.backends.vllm:VLLMBackend",    # vLLM's engine, a LoRARequest per prompt
}

__all__ = ["Adapter", "AdapterWeights", "BACKENDS", "GenerationBackend", "GenerationConfig",
           "Request", "adapter_key", "backend_class", "backend_record", "make_backend",
           "register_backend"]


def register_backend(name: str, target: str) -> None:
    """Add a backend: ``target`` is ``"module:Class"``, a ``GenerationBackend`` subclass
    with ``load(model_name, device, config, progress=..., options=...)``."""
    BACKENDS[name] = target


def backend_class(name: str) -> type[GenerationBackend]:
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def backend_record(name: str, options: list[str] | dict | None = None) -> dict:
    """What a results record says of the backend: its name and every option's value."""
    from dataclasses import asdict

    from .base import parse_backend_options
    cls = backend_class(name)
    if cls.Options is None:
        return {"name": name, "options": {}}
    return {"name": name, "options": asdict(parse_backend_options(cls.Options, options, name))}


def make_backend(name: str, model_name: str, device: str, config: GenerationConfig,
                 progress: bool = True, options: list[str] | dict | None = None
                 ) -> GenerationBackend:
    """The backend ``name`` with ``model_name`` loaded on ``device``."""
    cls = backend_class(name)
    if options:
        return cls.load(model_name, device, config, progress=progress, options=options)
    return cls.load(model_name, device, config, progress=progress)
