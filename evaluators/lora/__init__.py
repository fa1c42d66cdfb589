"""LoRA adapters: the PEFT file format (``peft_format``)."""
