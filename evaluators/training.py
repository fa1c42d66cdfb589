"""The one training module of every trained method (baselines and Code2LoRA).

Examples are BOS + prefix + target + EOS with the loss on target + EOS only, the prefix
left-truncated so the example fits ``max_seq_len``. Training runs through transformers'
``Trainer``: batches grouped by length, gradient accumulation, AdamW, a cosine schedule
with warmup, a seed, checkpoints every ``save_steps`` and resumption from the last one,
bf16 on CUDA and float32 on CPU; multi-GPU through ``accelerate launch`` unchanged. The
loss curve is saved as JSON and PNG beside the checkpoints.
"""
from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from repopeftbench.io import write_json

from .backends.base import encode_prompt, encode_target

IGNORE = -100


@dataclass
class TrainConfig:
    """Optimisation settings; ``max_steps`` > 0 overrides ``epochs``."""
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_seq_len: int = 4096           # = the protocol's input budget (max_input_tokens)
    seed: int = 0
    save_steps: int = 200
    logging_steps: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


def encode_example(tokenizer, prefix: str, target: str, max_seq_len: int) -> dict[str, list[int]]:
    """input_ids = the prompt as evaluation encodes it (``encode_prompt``: BOS + prefix cut
    from the left) + target + EOS, within ``max_seq_len``; labels masked (-100) everywhere
    but target + EOS."""
    target_ids = encode_target(tokenizer, target)
    bos = 1 if tokenizer.bos_token_id is not None else 0
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    completion = (target_ids + eos)[:max(1, max_seq_len - bos)]
    prompt_ids = encode_prompt(tokenizer, prefix, max_seq_len - len(completion))
    input_ids = prompt_ids + completion
    labels = [IGNORE] * len(prompt_ids) + completion
    return {"input_ids": input_ids, "labels": labels}


def encode_tasks(tokenizer, tasks: list[dict], max_seq_len: int,
                 prompt=None) -> list[dict[str, Any]]:
    """Training examples of ``tasks``; ``prompt(task)`` (default: the prefix), e.g. a
    context provider's prompt (``Method.training_prompt``)."""
    prompt = prompt or (lambda t: t["prefix"])
    return [encode_example(tokenizer, prompt(t), t["target"], max_seq_len) for t in tasks]


class CompletionCollator:
    """Right-pads a batch; padded positions are masked in the attention and the loss."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        for key in features[0]:
            if key not in out and key != "length":
                out[key] = torch.tensor([f[key] for f in features])
        return out


def _accepts_logits_to_keep(lm) -> bool:
    inner = lm.get_base_model() if hasattr(lm, "get_base_model") else lm     # PEFT passes it on
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def target_losses(lm, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  labels: torch.Tensor, hidden: torch.Tensor | None = None,
                  start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, token count) per row over the labelled tokens (target + EOS),
    the LM head evaluated only where a labelled token is predicted: a vocabulary-wide
    projection at every prompt position is most of the head's cost and none of the loss.
    With ``hidden`` (the inputs of decoder layer ``start``, from a ``LowerLayerCache``),
    only the layers from ``start`` up run."""
    need = labels[:, 1:] != IGNORE                                    # (n, t-1): predicts a label
    where = torch.zeros_like(labels, dtype=torch.bool)
    where[:, :-1] = need
    keep = {"logits_to_keep": where} if _accepts_logits_to_keep(lm) else {}
    if hidden is not None:
        from .lower_cache import top_forward
        logits = top_forward(lm, hidden, attention_mask, start, **keep).logits
    else:
        logits = lm(input_ids=input_ids, attention_mask=attention_mask, **keep).logits
    if logits.dim() == 3 and logits.shape[:2] == labels.shape:        # every position came back
        logits = logits[where]
    logits = logits.reshape(-1, logits.shape[-1])                     # (k, V), k = where.sum()
    targets = labels[:, 1:][need]                                     # (k,)
    ce = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    rows = where.nonzero()[:, 0]
    sums = torch.zeros(labels.shape[0], dtype=ce.dtype, device=ce.device).index_add(0, rows, ce)
    return sums, need.sum(1)


def _target_only_trainer():
    """The ``Trainer`` whose loss evaluates the LM head at target positions only
    (``target_losses``); the same loss as the model's own (mean over labelled tokens, or
    over ``num_items_in_batch`` under gradient accumulation)."""
    from transformers import Trainer

    class TargetOnlyTrainer(Trainer):
        lower_cache = None          # a LowerLayerCache: run only the layers above it

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            hidden, start = None, 0
            if self.lower_cache is not None:
                ref = next(p for p in model.parameters())
                hidden = self.lower_cache.batch(inputs["index"], inputs["input_ids"].shape[1],
                                                dtype=ref.dtype, device=ref.device)
                start = self.lower_cache.start
            sums, counts = target_losses(model, inputs["input_ids"], inputs["attention_mask"],
                                         inputs["labels"], hidden, start)
            total = num_items_in_batch if num_items_in_batch is not None else counts.sum()
            loss = sums.sum() / torch.as_tensor(total, device=sums.device).clamp(min=1)
            return (loss, {"loss": loss}) if return_outputs else loss
    return TargetOnlyTrainer


@dataclass
class TrainResult:
    steps: int
    train_loss: float
    wall_time_s: float          # over every run of the training, resumptions included
    tokens: int                 # tokens in the examples seen (padding excluded)
    tokens_per_s: float
    loss_curve: list[dict]
    resumed_from_step: int = 0  # the last run started from this checkpoint (0: none)

    def to_dict(self) -> dict:
        return asdict(self)


ELAPSED_FILE = "elapsed.json"


def _elapsed_callback(start: float, before: float):
    """A ``TrainerCallback`` writing the training's wall time so far into each checkpoint,
    so that a resumed training reports the time of all its runs."""
    from transformers import TrainerCallback

    class _Elapsed(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_json(folder / ELAPSED_FILE, {"wall_time_s": before + time.time() - start})
    return _Elapsed()


def _last_checkpoint(directory: Path) -> str | None:
    ckpts = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def plot_loss(curve: list[dict], path: Path, title: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    steps = [p["step"] for p in curve if "loss" in p]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(steps, [p["loss"] for p in curve if "loss" in p], marker=".")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (target + EOS)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def train_causal_lm(model, tokenizer, examples: list[dict], config: TrainConfig, out_dir: Path,
                    device: str = "cpu", title: str = "training", trainer_cls=None,
                    progress: bool = True, lower_cache=None) -> TrainResult:
    """Train ``model`` (its trainable parameters: LoRA or all) on encoded examples with the
    transformers ``Trainer``; resumes from the last checkpoint in ``out_dir``. With
    ``lower_cache`` (a ``LowerLayerCache`` of these examples, which then carry their
    ``index``), only the layers above the cached ones run."""
    from transformers import TrainingArguments, set_seed

    if not examples:
        raise ValueError("no training examples")
    out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    cuda = device.startswith("cuda")
    params = inspect.signature(TrainingArguments.__init__).parameters
    # transformers 5 renamed these; accept both generations
    version_kwargs = {
        **({"warmup_ratio": config.warmup_ratio} if "warmup_ratio" in params
           else {"warmup_steps": config.warmup_ratio}),
        **({"group_by_length": True} if "group_by_length" in params
           else {"train_sampling_strategy": "group_by_length"})}
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        lr_scheduler_type="cosine", **version_kwargs,
        weight_decay=config.weight_decay, optim="adamw_torch", logging_steps=config.logging_steps,
        save_steps=config.save_steps, save_total_limit=2, seed=config.seed, data_seed=config.seed,
        bf16=cuda, use_cpu=not cuda, report_to=[],
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=not progress)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    resume = _last_checkpoint(out_dir / "trainer")
    before = 0.0
    if resume is not None and (Path(resume) / ELAPSED_FILE).exists():
        before = float(json.loads((Path(resume) / ELAPSED_FILE).read_text())["wall_time_s"])
    t0 = time.time()
    cls = trainer_cls or _target_only_trainer()
    if lower_cache is not None:
        cls = type(cls.__name__, (cls,), {"lower_cache": lower_cache})
    trainer = cls(model=model, args=args, train_dataset=examples,
                                       data_collator=CompletionCollator(pad),
                                       callbacks=[_elapsed_callback(t0, before)])
    out = trainer.train(resume_from_checkpoint=resume)
    wall = before + time.time() - t0
    steps = trainer.state.global_step
    per_step = config.batch_size * config.grad_accum
    mean_len = sum(len(e["input_ids"]) for e in examples) / len(examples)
    tokens = int(steps * per_step * mean_len)
    curve = [{k: v for k, v in rec.items() if k in ("step", "loss", "learning_rate", "epoch")}
             for rec in trainer.state.log_history if "loss" in rec]
    result = TrainResult(steps, float(out.training_loss), round(wall, 2), tokens,
                         round(tokens / wall, 1) if wall > 0 else 0.0, curve,
                         int(resume.rsplit("-", 1)[-1]) if resume else 0)
    write_json(out_dir / "loss_curve.json", result.to_dict())
    plot_loss(curve, out_dir / "loss_curve.png", title)
    return result
