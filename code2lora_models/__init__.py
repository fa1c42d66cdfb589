"""Code2LoRA: a hypernetwork that turns a repository (Static) or its stream of production
diffs (Evo) into a LoRA adapter for a frozen code model.

encoder -> repo_embedding (pooling, cache) -> codes (benchmark tables) -> hypernetwork
(heads) [+ evo GRU] -> training (through per-row LoRA) -> bundle (checkpoint) -> methods
(registered ``code2lora-static`` / ``code2lora-evo``), audit, adapt (any local repository).
"""
