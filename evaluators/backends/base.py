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
    """The decoding protocol every backend follows. How a backend schedules the work
    (batches, prefix sharing, memory) is its own options' (``--backend-option``)."""
    max_new_tokens: int = 64
    max_input_tokens: int = 4096
    stop_at_newline: bool = True
    # how prompts become tokens (``encode_prompt``); part of every run's cache key, so that
    # predictions made under an earlier encoding are not reused
    prompt_encoding: str = "bos+left-truncated"

    # The HF backend's scheduling options were once fields here and were part of the run's
    # cache key; they stay in the key with those fields' defaults, so that predictions
    # cached before they moved remain valid (a schedule never changes a prediction: the
    # prediction tests hold every schedule to the per-task reference).
    KEY_LEGACY = {"batch_size": None, "reuse_prefix": True, "min_shared_tokens": 8}

    def to_dict(self) -> dict:
        """The protocol as the run's cache key and results record it."""
        return {**asdict(self), **self.KEY_LEGACY}


def parse_backend_options(options_cls: type, items: "list[str] | dict | None", backend: str):
    """``--backend-option KEY=VALUE`` strings (or a dict, or an instance) as ``options_cls``,
    each value parsed to its field's type; a one-line error names the bad one."""
    from dataclasses import fields

    from repopeftbench.errors import UserError
    if isinstance(items, options_cls):
        return items
    types = {f.name: str(f.type) for f in fields(options_cls)}
    if isinstance(items, dict):
        given = dict(items)
    else:
        given = {}
        for item in items or []:
            key, eq, value = item.partition("=")
            if not eq:
                raise UserError(f"--backend-option takes KEY=VALUE, got {item!r}")
            given[key] = value
    out = {}
    for key, value in given.items():
        if key not in types:
            raise UserError(f"unknown {backend} backend option {key!r}; choose from "
                            f"{', '.join(types)}")
        kind = types[key].replace(" | None", "")
        try:
            if not isinstance(value, str):
                out[key] = value
            elif kind == "bool":
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                out[key] = value.lower() in ("true", "1", "yes")
            elif value.lower() == "none" and "None" in types[key]:
                out[key] = None
            else:
                out[key] = {"int": int, "float": float, "str": str}[kind](value)
        except (ValueError, KeyError):
            raise UserError(f"{backend} backend option {key}={value!r}: not a valid "
                            f"{types[key]}") from None
    return options_cls(**out)


def encode_prompt(tokenizer, text: str, max_tokens: int) -> list[int]:
    """The protocol's prompt encoding, shared by generation, teacher-forced scoring and
    training: the tokenizer's BOS (where it has one) and the text's tokens, cut from the
    left to ``max_tokens`` with the BOS kept. (``add_special_tokens=True`` is not used:
    whether it adds a BOS differs between tokenizers.)"""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    room = max(0, max_tokens - len(bos))
    return bos + (ids[len(ids) - room:] if room else [])


def encode_target(tokenizer, target: str) -> list[int]:
    """The target's tokens as teacher forcing and training feed them (tokenised alone:
    where a model would merge the target's first token with the prompt's last, or its
    last with the line break, greedy decoding may spell the same text otherwise)."""
    return tokenizer(target, add_special_tokens=False)["input_ids"]


def is_clean_stop(token_text: str) -> bool:
    """A token that ends a completion without adding to it: a line break preceded by
    whitespace only (what the scorer's first-line cut and strip leave unchanged)."""
    return "\n" in token_text and not token_text.split("\n", 1)[0].strip()


@dataclass(frozen=True)
class TFScore:
    """A task scored teacher-forced: one forward pass over prompt + target."""
    logprob: float       # sum of the target tokens' log-probabilities (FIM tokens banned)
    n_tokens: int        # target tokens
    n_correct: int       # target tokens that are the argmax given the true prefix
    em: bool             # every target token, then a clean stop (or EOS), is the argmax

    def metrics(self) -> dict[str, float]:
        n = max(1, self.n_tokens)
        return {"tf_em": float(self.em), "tf_token_acc": self.n_correct / n,
                "tf_logprob": self.logprob / n}


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


def tensors_nbytes(tensors) -> int:
    """The memory of some tensors, a tensor that appears several times (one generated
    pair shared by the layers of a module type) counted once."""
    seen = {t.data_ptr(): t.numel() * t.element_size() for t in tensors}
    return sum(seen.values())


def adapter_nbytes(adapter: Adapter) -> int:
    """Bytes an adapter holds in memory (0 for a directory, which is read when used, or
    None)."""
    return tensors_nbytes(adapter.tensors.values()) if isinstance(adapter, AdapterWeights) else 0


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
    work_dir: Path | None = None   # the run's artifacts directory, when it has one
    Options: Any = None            # its ``--backend-option`` dataclass, if it takes any

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

    def score_targets(self, requests: list[Request], targets: list[str], desc: str = "scoring",
                      on_result: Callable[[int, TFScore], None] | None = None) -> list[TFScore]:
        """Teacher-forced scores of each request's target, in order (same prompt encoding,
        truncation, banned tokens and adapters as ``generate``)."""
        raise NotImplementedError(f"backend {self.name!r} has no teacher-forced scoring")

    def score_configurations(self, configs: list[list[Request]], targets: list[str],
                             desc: str = "scoring",
                             on_result: Callable[[int, int, TFScore], None] | None = None
                             ) -> list[list[TFScore]]:
        """Teacher-forced scores of the same tasks under several adapter configurations
        (``configs[c][i]``: task i's request in configuration c), as ``out[c][i]``;
        ``on_result(c, i, score)``. A backend may share work between configurations that
        differ in their adapters only; this one scores them one after another."""
        return [self.score_targets(requests, targets, desc,
                                   (lambda i, s, c=c: on_result(c, i, s)) if on_result else None)
                for c, requests in enumerate(configs)]


def same_prompts(configs: list[list[Request]]) -> bool:
    """Whether configurations of the same tasks differ in their adapters only."""
    for c, requests in enumerate(configs[1:], 1):
        if len(requests) != len(configs[0]):
            raise ValueError(f"configuration {c} has {len(requests)} requests, "
                             f"configuration 0 has {len(configs[0])}")
    return all(a.prompt == b.prompt for requests in configs[1:] for a, b in zip(configs[0], requests))
