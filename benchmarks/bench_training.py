"""Training throughput: the training module (evaluators/training.py) against plain
transformers ``Trainer`` + PEFT on the same model, examples, LoRA and optimiser settings,
in the same run. Prints tokens/s of each and the ratio.

    python benchmarks/bench_training.py --dataset bench/ --steps 20 --batch-size 4 \
        [--model smollm2] [--max-seq-len 512]

"Plain" means: the same encoded examples, ``Trainer`` with its default random sampler
and a collator that pads every batch to its longest example; ours groups by length.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evaluators.models import load_model
from evaluators.training import CompletionCollator, TrainConfig, encode_tasks, train_causal_lm
from repopeftbench.dataset import Benchmark


def _lora(model):
    from peft import LoraConfig, get_peft_model

    from evaluators.lora.config import DEFAULT_TARGETS
    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                            target_modules=list(DEFAULT_TARGETS),
                                            task_type="CAUSAL_LM"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="static")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-seq-len", type=int, default=512)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()

    tasks = Benchmark(args.dataset).train_tasks(args.config, columns=["prefix", "target"])
    n = args.steps * args.batch_size
    tasks = tasks[:: max(1, len(tasks) // n)][:n]
    model, tokenizer, _ = load_model(args.model)
    examples = encode_tasks(tokenizer, tasks, args.max_seq_len)
    n_tokens = sum(len(e["input_ids"]) for e in examples)
    config = TrainConfig(max_steps=args.steps, batch_size=args.batch_size,
                         max_seq_len=args.max_seq_len, logging_steps=5, save_steps=10**6)

    with tempfile.TemporaryDirectory() as tmp:
        res = train_causal_lm(_lora(model), tokenizer, examples, config, Path(tmp) / "ours",
                              progress=False)
        ours = n_tokens / res.wall_time_s

        from transformers import Trainer, TrainingArguments
        model2, _, _ = load_model(args.model)
        targs = TrainingArguments(output_dir=str(Path(tmp) / "plain"), max_steps=args.steps,
                                  per_device_train_batch_size=args.batch_size,
                                  learning_rate=config.learning_rate, lr_scheduler_type="cosine",
                                  optim="adamw_torch", report_to=[], use_cpu=True,
                                  remove_unused_columns=False, save_strategy="no",
                                  logging_steps=5, disable_tqdm=True, seed=0)
        plain_trainer = Trainer(model=_lora(model2), args=targs, train_dataset=examples,
                                data_collator=CompletionCollator(tokenizer.pad_token_id
                                                                 or tokenizer.eos_token_id))
        t0 = time.perf_counter()
        plain_trainer.train()
        plain = n_tokens / (time.perf_counter() - t0)
    print(f"{len(examples)} examples, {n_tokens} tokens, {args.steps} steps of {args.batch_size}")
    print(f"plain Trainer + PEFT:  {plain:8.1f} tokens/s")
    print(f"training module:       {ours:8.1f} tokens/s")
    print(f"ratio module/plain {ours / plain:.2f}")


if __name__ == "__main__":
    main()
