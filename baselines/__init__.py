"""Baseline methods: pretrained (zero-shot); RAG, fine-tuning and LoRA baselines to come."""
