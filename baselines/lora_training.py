"""Training a LoRA adapter on assertion tasks: what shared-lora and per-repo-lora share."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaluators.budget import TrainOptions, cap_per_repo, data_hash  # noqa: F401 (re-exported)
from evaluators.context import ContextOptions
from evaluators.lora.config import DEFAULT_TARGETS

if TYPE_CHECKING:  # torch is imported only when a method trains
    from evaluators.training import TrainResult


@dataclass
class LoraOptions(TrainOptions, ContextOptions):
    """The publication's LoRA (rank 16, alpha 32, every projection) and its training, with
    the context before the prefix (``context=``) in training and prediction alike."""
    r: int = 16
    alpha: float = 32.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS


def train_lora_adapter(model_name: str, device: str, tasks: list[dict], options: LoraOptions,
                       seed: int, out_dir: Path, title: str, progress: bool = True,
                       prompt=None) -> "TrainResult":
    """Train one adapter on ``tasks`` (a fresh copy of the base model) and save it in the
    PEFT layout to ``out_dir/adapter``; the loss curve goes beside it. ``prompt(task)``:
    the training prompt (default: the prefix; a context provider's otherwise)."""
    from peft import LoraConfig, get_peft_model

    from evaluators.models import load_model
    from evaluators.training import encode_tasks, train_causal_lm

    model, tokenizer, _ = load_model(model_name, device)
    model.train()
    from evaluators.lora.config import top_layers
    layers = top_layers(model, options.top_layers)
    peft_model = get_peft_model(model, LoraConfig(
        r=options.r, lora_alpha=options.alpha, lora_dropout=0.0,
        target_modules=list(options.target_modules), task_type="CAUSAL_LM",
        layers_to_transform=list(layers) or None))
    examples = encode_tasks(tokenizer, tasks, options.max_seq_len, prompt)
    cache = None
    if layers:                       # the frozen layers below the adapters: computed once
        from evaluators.checkpoints import model_revision
        from evaluators.lower_cache import LowerLayerCache
        examples = [{**e, "index": i} for i, e in enumerate(examples)]
        cache = LowerLayerCache(peft_model, examples, layers[0], model_revision(model_name),
                                device, progress=progress)
    result = train_causal_lm(peft_model, tokenizer, examples, options.train_config(seed), out_dir,
                             device, title=title, progress=progress, lower_cache=cache)
    peft_model.save_pretrained(out_dir / "adapter")
    (out_dir / "train_result.json").write_text(json.dumps(
        {**result.to_dict(), "n_tasks": len(tasks), "options": asdict(options)}, indent=2))
    return result
