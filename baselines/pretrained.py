"""The frozen model, zero-shot: the prefix is the whole prompt, or a context provider's
context before it (``--option context=bm25|dense|drc``)."""
from __future__ import annotations

from dataclasses import dataclass

from evaluators.context import ContextOptions
from evaluators.registry import Method, register_method


@dataclass
class PretrainedOptions(ContextOptions):
    """The context before the prefix (none by default)."""


@register_method("pretrained")
class Pretrained(Method):
    """Zero-shot completion with the base model (SPEC section 9, first row)."""
    Options = PretrainedOptions
    demo_teacher_forced = True        # prompts are the prefix alone: cheap to score many
