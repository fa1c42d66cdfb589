"""The method plugin API: a method is one class plus one decorator.

Installed packages add methods through the ``repopeftbench.methods`` entry-point group
(``name = "package.module:Class"``); built-in baselines register exactly the same way.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, ClassVar

from .generation import GenerationConfig

ENTRY_POINT_GROUP = "repopeftbench.methods"
BUILTIN_MODULES = ("baselines.pretrained", "evaluators.sanity")
METHODS: dict[str, type["Method"]] = {}


@dataclass
class RunContext:
    """What a method may use: the model to load, the device, the decoding protocol."""
    model_name: str
    device: str = "cpu"
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    seed: int = 0
    progress: bool = True
    _loaded: Any = None

    def model(self):
        """(model, tokenizer, resolved path), loaded once."""
        if self._loaded is None:
            from .models import load_model
            self._loaded = load_model(self.model_name, self.device)
        return self._loaded

    def generator(self):
        from .generation import HFGenerator
        model, tokenizer, _ = self.model()
        return HFGenerator(model, tokenizer, self.generation, progress=self.progress)


class Method:
    """Base class. Subclasses set ``name`` and override what they need.

    The harness calls ``fit`` once with the benchmark (its training tables), then
    ``predict`` once per repository with that repository's tasks of the evaluated split.
    """
    name: ClassVar[str] = ""
    uses_model: ClassVar[bool] = True

    def __init__(self, context: RunContext, **options: Any):
        self.context = context
        self.options = options

    def config(self) -> dict:
        """Everything that changes this method's predictions (cached runs are keyed on it)."""
        return {"name": self.name, **self.options}

    def fit(self, dataset) -> None:
        """Train on ``dataset`` (a ``repopeftbench.dataset.Benchmark``); default: nothing."""

    def prompt(self, task: dict) -> str:
        return task["prefix"]

    def adapter(self, repo_id: str, commit_sha: str | None = None) -> str | None:
        """A PEFT adapter directory for a repository (or commit), or None for the base model."""
        return None

    def predict(self, repo_id: str, tasks: list[dict]) -> list[str]:
        """Raw generations, one per task, in order."""
        if self.adapter(repo_id) is not None:
            raise NotImplementedError("adapter-based methods must override predict() until the "
                                      "per-row LoRA backend lands")
        return self.context.generator().generate([self.prompt(t) for t in tasks], desc=repo_id)


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def wrap(cls: type[Method]) -> type[Method]:
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {METHODS[name].__module__}")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def _load_plugins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in METHODS:
            cls = ep.load()
            register_method(ep.name)(cls)


def get_method(name: str) -> type[Method]:
    _load_plugins()
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def available_methods() -> list[str]:
    _load_plugins()
    return sorted(METHODS)
