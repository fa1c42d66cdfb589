"""Training a LoRA adapter on assertion tasks: what shared-lora and per-repo-lora share."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaluators.budget import TrainOptions, cap_per_repo, data_hash  # noqa: F401 (re-exported)
from evaluators.context import ContextOptions
from evaluators.lora.config import DEFAULT_TARGETS
from evaluators.lora.peft_format import check_same_lora, find_adapter_dir
from repopeftbench.io import read_json_file, sha256_file

if TYPE_CHECKING:  # torch is imported only when a method trains
    from evaluators.training import TrainResult


@dataclass
class LoraOptions(TrainOptions, ContextOptions):
    """The publication's LoRA (rank 16, alpha 32, every projection) and its training, with
    the context before the prefix (``context=``) in training and prediction alike."""
    r: int = 16
    alpha: float = 32.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    # a PEFT adapter directory (or a checkpoint holding one in adapter/) the training starts
    # from instead of zero, e.g. a shared-lora checkpoint; its rank, alpha, projections and
    # layers must be these
    init_adapter: str = ""


def init_adapter_dir(path: str) -> Path:
    """The PEFT adapter directory ``init_adapter=`` names (itself or its ``adapter/``)."""
    return find_adapter_dir(path, "init_adapter")


def init_adapter_hash(path: str) -> str:
    """What the initial adapter's weights are (a training cache must not outlive them)."""
    d = init_adapter_dir(path)
    return sha256_file(d / "adapter_model.safetensors")[:16]


def _load_init_adapter(model, options: LoraOptions, layers):
    """The base model with the initial adapter, trainable, after checking it is the LoRA
    these options describe (so only the starting point differs from a fresh one)."""
    from peft import PeftModel
    d = init_adapter_dir(options.init_adapter)
    config = read_json_file(d / "adapter_config.json", "adapter configuration")
    check_same_lora(config, options.r, options.alpha, options.target_modules, layers,
                    f"init_adapter={options.init_adapter}")
    return PeftModel.from_pretrained(model, str(d), is_trainable=True)


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
    import torch
    torch.manual_seed(seed)          # the adapter's random init: the seed's, not the process's
    if options.init_adapter:
        peft_model = _load_init_adapter(model, options, layers)
    else:
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
