"""The frozen model, zero-shot: the prefix is the whole prompt."""
from __future__ import annotations

from evaluators.registry import Method, register_method


@register_method("pretrained")
class Pretrained(Method):
    """Zero-shot completion with the base model (SPEC section 9, first row)."""
    demo_teacher_forced = True        # prompts are the prefix alone: cheap to score many
