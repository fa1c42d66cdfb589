"""Code2LoRA: repository encoder and Static/Evo hypernetworks (to come)."""
