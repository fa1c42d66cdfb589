"""The method plugin API: a method is one class plus one decorator.

Methods, built-in ones included, are found through the ``repopeftbench.methods``
entry-point group (``name = "package.module:Class"`` in the package metadata). A method
declares its options as a dataclass (``Options``); ``--option KEY=VALUE`` values are
parsed to the field types. A trained method (``trainable = True``) learns in ``fit`` and
keeps what it learned with ``save``/``load``; ``predict`` returns, per task, either the
raw generation or a ``Request`` (prompt and adapter) that the harness generates in
batches, mixing repositories and adapters.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Union

from repopeftbench.errors import UserError

from .backends.base import Adapter, GenerationBackend, GenerationConfig, Request

if TYPE_CHECKING:
    from repopeftbench.dataset import Benchmark

ENTRY_POINT_GROUP = "repopeftbench.methods"
METHODS: dict[str, type["Method"]] = {}


@dataclass
class NoOptions:
    """A method without options."""


@dataclass
class RunContext:
    """What a method may use: the model and backend, the device, the decoding protocol,
    the seed, and a directory of its own for checkpoints, indexes and adapters."""
    model_name: str
    device: str = "cpu"
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    seed: int = 0
    artifacts_dir: Path | None = None
    backend_name: str = "hf"
    progress: bool = True
    backend_options: list[str] | dict | None = None   # --backend-option KEY=VALUE
    _backend: GenerationBackend | None = None
    _weights: tuple | None = None

    def backend(self) -> GenerationBackend:
        """The generation backend, with the model loaded once."""
        if self._backend is None:
            from .backends import make_backend
            self._backend = make_backend(self.backend_name, self.model_name, self.device,
                                         self.generation, self.progress, self.backend_options)
            # where a backend may write files of the run (vLLM: in-memory adapters)
            self._backend.work_dir = self.artifacts_dir
        return self._backend

    def model(self):
        """(model, tokenizer) as transformers objects, for methods that train, encode or
        score with the model directly: the HF backend's own; with another backend (vLLM
        keeps its weights in its engine), a transformers copy loaded once."""
        backend = self.backend()
        if hasattr(backend, "model"):
            return backend.model, backend.tokenizer  # type: ignore[attr-defined]
        if self._weights is None:
            from .models import load_model
            model, tokenizer, _ = load_model(self.model_name, self.device)
            self._weights = (model, tokenizer)
        return self._weights

    def artifacts(self, *parts: str) -> Path:
        """A directory under the run's artifacts directory (created)."""
        if self.artifacts_dir is None:
            raise UserError("this method needs an artifacts directory (run it through "
                            "'repopeftbench evaluate' or 'train')")
        path = self.artifacts_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


class Method:
    """Base class. Subclasses are registered with ``@register_method(name)``.

    The harness calls ``fit`` (trained methods, unless a checkpoint is loaded) once with the
    benchmark and the track, then ``predict`` once per repository with that repository's
    tasks of the evaluated split.
    """
    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    uses_model: ClassVar[bool] = True
    trainable: ClassVar[bool] = False
    # Adapter methods that generate one adapter per item (repository, commit) name the
    # adapters the audit compares: first the method's own, then the replacements
    # (e.g. ("own", "mean", "shuffled")). The harness scores every mode on the same tasks.
    audit_modes: ClassVar[tuple[str, ...]] = ()
    # a tag per audit mode (or "info", the extra figures) whose definition changed, so
    # that predictions cached under the old definition are not reused
    audit_revision: ClassVar[dict[str, str]] = {}
    # policy the leaderboard and the demo read from the class, never from a list of names
    sanity: ClassVar[bool] = False              # a check of the harness and scorer, not a method
    demo: ClassVar[bool] = True                 # the demo runs it when it needs no training
    demo_teacher_forced: ClassVar[bool] = False  # ... and also scores it teacher-forced
    requires: ClassVar[tuple[str, ...]] = ()    # modules it imports (the demo skips it without)
    # options left out of ``config`` (the run key) at their defaults: ones added after runs
    # were cached, so those runs keep their keys
    keyless_defaults: ClassVar[tuple[str, ...]] = ()
    # options that never change a prediction (e.g. whether to also score the audit)
    unkeyed: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: RunContext, options: Any = None):
        self.context = context
        self.options = options if options is not None else self.Options()
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__} options, got "
                            f"{type(self.options).__name__}")

    def config(self) -> dict:
        """Everything that changes this method's predictions (cached runs are keyed on it).
        Context options at their defaults are left out, so runs made before methods took
        a context keep their keys (and so are ``keyless_defaults`` at theirs)."""
        from .context import CONTEXT_FIELDS, CONTEXT_KEYLESS
        out = {k: v for k, v in dataclasses.asdict(self.options).items()
               if k not in type(self).unkeyed}
        defaults = self.Options()
        if all(out.get(k) == getattr(defaults, k, None) for k in CONTEXT_FIELDS if k in out):
            out = {k: v for k, v in out.items() if k not in CONTEXT_FIELDS}
        from .budget import BUDGET_KEYLESS
        keyless = (*type(self).keyless_defaults, *CONTEXT_KEYLESS, *BUDGET_KEYLESS)
        out = {k: v for k, v in out.items()
               if not (k in keyless and v == getattr(defaults, k, None))}
        return {"name": self.name, **out}

    # --- context (what goes before the prefix: evaluators.context) ---------------------
    def context_options(self):
        """The context provider's options: the method's own ``context*`` options."""
        from .context import context_options
        return context_options(self.options)

    def provider(self):
        """The method's context provider (``--option context=NAME``), made once."""
        if getattr(self, "_provider", None) is None:
            from .context import make_provider
            self._provider = make_provider(self.context_options(), self.context, self.name)
        return self._provider

    def attach(self, bench: "Benchmark") -> None:
        """Give the context provider the benchmark (the harness calls it after ``setup``;
        training calls it before building prompts)."""
        if getattr(self, "_attached", None) is not bench:
            self.provider().setup(bench)
            self._attached = bench

    def prompts(self, repo_id: str, tasks: list[dict], budget: int | None = None) -> list[str]:
        """The prompts of a repository's tasks: the provider's context, then ``prompt``
        (the prefix); ``budget``: the input budget (default: the protocol's)."""
        provider = self.provider()
        if provider.name == "none":
            return [self.prompt(t) for t in tasks]
        budget = budget if budget is not None else self.context.generation.max_input_tokens
        memo = self.__dict__.setdefault("_prompt_memo", {})   # audit modes ask again
        key = (repo_id, budget, tuple(t["task_id"] for t in tasks))
        if key not in memo:
            memo.clear()                 # one repository's group at a time is enough
            memo[key] = provider.prompts(repo_id, tasks, budget)
        return memo[key]

    def training_prompt(self, bench: "Benchmark", tasks: list[dict], budget: int):
        """``prompt(task)`` for training examples, built by the same provider as evaluation
        prompts (None: the prefix alone)."""
        if self.provider().name == "none":
            return None
        from .context import prompt_function
        self.attach(bench)
        return prompt_function(self.provider(), tasks, budget)

    # --- training (trainable methods) ------------------------------------------------
    def fit(self, bench: "Benchmark", track: str) -> None:
        """Train on the benchmark's training tables of ``track``; default: nothing."""

    def save(self, directory: Path) -> None:
        """Write what ``fit`` learned into ``directory``."""

    def load(self, directory: Path) -> None:
        """Read what ``save`` wrote."""

    def setup(self, bench: "Benchmark", track: str) -> None:
        """Called before predicting, for every method (after ``fit``/``load``): read what
        prediction needs from the benchmark; default: give it to the context provider
        (the harness also calls ``attach`` for methods that override this)."""
        self.attach(bench)

    def check_split(self, track: str, split: str) -> None:
        """Raise ``UserError`` when the method cannot serve ``split``; default: any."""

    # --- prediction -------------------------------------------------------------------
    def prepare(self, tasks: list[dict]) -> None:
        """Called once with every task of the evaluated split (cached ones included) before
        any ``predict``; default: nothing."""

    def set_audit_mode(self, mode: str) -> None:
        """Switch ``predict`` to the adapters of audit ``mode`` (one of ``audit_modes``):
        ``self.mode``, which the method's ``predict``/``adapter`` reads."""
        if not self.audit_modes:
            raise NotImplementedError(f"method {self.name!r} has no audit modes")
        if mode not in self.audit_modes:
            raise ValueError(f"unknown audit mode {mode!r}")
        self.mode = mode

    def audit_tag(self, mode: str) -> str:
        """The tag of audit ``mode`` (or "info") in its cache file's name: the class's
        ``audit_revision``, plus whatever an instance's options change in that mode only
        (so the other modes' cached predictions stay valid)."""
        return type(self).audit_revision.get(mode, "")

    def audit_equivalent(self, mode: str) -> tuple[str, dict] | None:
        """Another method (its name and options) whose predictions audit ``mode``'s are,
        task for task, or None. The harness then reads and fills that method's prediction
        cache for the mode, so e.g. a base-model mode is not predicted again for every
        checkpoint when the pretrained run has it. Default: none."""
        return None

    def audit_info(self) -> dict:
        """Extra audit figures (e.g. the pairwise cosine of the adapters) after ``prepare``."""
        return {}

    def audit_item(self, task: dict) -> str:
        """What the audit's replacement adapters depend on, per evaluated task. The harness
        caches each replacement mode (and the audit figures) once per set of these over the
        evaluated tasks, so a larger sample of the same items (repositories, commits)
        reuses every task a smaller one scored. Default: the task itself (another task set
        scores every replacement again); a method whose replacements are made from the
        evaluated repositories (a leave-one-out mean, another repository's adapter) names
        the repository."""
        return task["task_id"]

    def prompt(self, task: dict) -> str:
        return task["prefix"]

    def adapter(self, task: dict) -> Adapter:
        """The LoRA adapter a task's row needs (a PEFT directory or weights in memory), or
        None for the base model."""
        return None

    def predict(self, repo_id: str, tasks: list[dict]) -> list[str | Request]:
        """Per task, in order: a raw generation, or a ``Request`` for the harness to
        generate (batched with other repositories' requests)."""
        return [Request(p, self.adapter(t)) for p, t in zip(self.prompts(repo_id, tasks), tasks)]


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def wrap(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"method {name!r}: {cls!r} is not a subclass of "
                            f"evaluators.registry.Method")
        if not dataclasses.is_dataclass(cls.Options):
            raise TypeError(f"method {name!r}: Options must be a dataclass")
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {METHODS[name].__module__}")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


_LOADED = False


# The packages whose modules hold the built-in methods: a module of theirs with a
# ``@register_method("name")`` line is imported when methods are first looked up, so a new
# built-in method is one file and its decorator (no entry point, no reinstall).
BUILTIN_PACKAGES = ("baselines", "code2lora_models", "evaluators")
_DECORATED = re.compile(r'^@register_method\(\s*["\']', re.M)


def builtin_method_modules() -> list[str]:
    """The modules of the built-in packages that register a method, by a text scan (no
    import: the scan is cheap and imports nothing heavy)."""
    root = Path(__file__).resolve().parents[1]
    out = []
    for pkg in BUILTIN_PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            if _DECORATED.search(path.read_text(encoding="utf-8", errors="replace")):
                out.append(".".join(path.relative_to(root).with_suffix("").parts))
    return out


def _load_plugins() -> None:
    """Import the built-in method modules, then every method of the entry-point group
    (methods that installed packages add)."""
    global _LOADED
    if _LOADED:
        return
    for module in builtin_method_modules():
        importlib.import_module(module)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in METHODS:
            continue
        try:
            cls = ep.load()
        except Exception as exc:
            raise UserError(f"method plugin {ep.name!r} ({ep.value}) failed to import: "
                            f"{type(exc).__name__}: {exc}") from exc
        register_method(ep.name)(cls)
    _LOADED = True


def get_method(name: str) -> type[Method]:
    _load_plugins()
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def available_methods() -> list[str]:
    _load_plugins()
    return sorted(METHODS)


def is_sanity_method(name: str) -> bool:
    """Whether ``name`` is a registered sanity check (gold, empty); False for a name no
    method registers (a submission's, or one of a package not installed)."""
    _load_plugins()
    return name in METHODS and METHODS[name].sanity


# --------------------------------------------------------------------------- options

def _describe_type(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(text: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null", ""):
            return None
        return _convert(text, args[0]) if len(args) == 1 else text
    if origin in (tuple, list):
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
        values = [_convert(v.strip(), inner) for v in text.split(",") if v.strip()]
        return tuple(values) if origin is tuple else values
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if tp in (int, float, str):
        return tp(text)
    if typing.get_origin(tp) is typing.Literal:
        if text not in typing.get_args(tp):
            raise ValueError(f"expected one of {', '.join(map(str, typing.get_args(tp)))}")
        return text
    return text


def option_fields(options_cls: type) -> dict[str, tuple[Any, Any]]:
    """name -> (type, default) of an options dataclass."""
    hints = typing.get_type_hints(options_cls)
    out = {}
    for f in dataclasses.fields(options_cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out[f.name] = (hints[f.name], default)
    return out


def parse_options(method: type[Method], items: list[str] | dict[str, Any] | None) -> Any:
    """An ``Options`` instance from ``KEY=VALUE`` strings (or a dict of values or strings).
    An unknown key or a value of the wrong type is a ``UserError`` listing the valid keys."""
    fields_ = option_fields(method.Options)
    valid = ", ".join(f"{k} ({_describe_type(t)}, default {d!r})" for k, (t, d) in fields_.items()) \
        or "none"
    pairs: dict[str, Any] = {}
    if isinstance(items, dict):
        pairs = dict(items)
    else:
        for item in items or []:
            if "=" not in item:
                raise UserError(f"--option takes KEY=VALUE, got {item!r}")
            k, v = item.split("=", 1)
            pairs[k.strip()] = v
    values = {}
    for key, raw in pairs.items():
        if key not in fields_:
            raise UserError(f"method {method.name!r} has no option {key!r}; valid options: {valid}")
        tp = fields_[key][0]
        if isinstance(raw, str) and tp is not str:
            try:
                values[key] = _convert(raw, tp)
            except ValueError as exc:
                raise UserError(f"option {key}={raw!r} of method {method.name!r}: expected "
                                f"{_describe_type(tp)} ({exc}); valid options: {valid}") from None
        else:
            values[key] = raw
    try:
        return method.Options(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"options of method {method.name!r}: {exc}; valid options: {valid}") from None
