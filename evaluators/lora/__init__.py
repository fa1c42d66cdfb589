"""Per-row LoRA, laid out like PEFT's ``tuners/lora``: ``config`` (which layers, rank,
scale), ``layer`` (the per-row math), ``model`` (wiring into a model, adapters in PEFT's
key layout) and ``peft_format`` (the adapter files)."""
