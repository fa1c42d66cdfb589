"""Hugging Face transformers generation backend, following the decoding protocol of SPEC
section 8: greedy, at most 64 new tokens, input left-truncated to 4096 tokens, FIM special
tokens banned, each row stopping at the end of its line. Prompts are batched by length."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from repopeftbench.metrics import FIM_TOKENS


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 64
    max_input_tokens: int = 4096
    batch_size: int = 8
    stop_at_newline: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class _StopAtNewline(StoppingCriteria):
    """Per-row stop once the newest token contains a line break."""

    def __init__(self, newline_ids: torch.Tensor):
        self.newline_ids = newline_ids

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.isin(input_ids[:, -1], self.newline_ids.to(input_ids.device))


class HFGenerator:
    def __init__(self, model, tokenizer, config: GenerationConfig = GenerationConfig(),
                 progress: bool = True):
        self.model, self.tokenizer, self.config, self.progress = model, tokenizer, config, progress
        self.device = next(model.parameters()).device
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        vocab = tokenizer.get_vocab()
        self.banned = [[vocab[t]] for t in FIM_TOKENS if t in vocab]
        newline = [i for t, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([t])]
        self.newline_ids = torch.tensor(sorted(newline), dtype=torch.long)

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a prompt, left-truncated (a leading BOS token is kept)."""
        ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        limit = self.config.max_input_tokens
        if len(ids) <= limit:
            return ids
        bos = self.tokenizer.bos_token_id
        if bos is not None and ids[0] == bos:
            return [bos] + ids[len(ids) - limit + 1:]
        return ids[len(ids) - limit:]

    @torch.inference_mode()
    def generate_ids(self, batch: list[list[int]]) -> list[list[int]]:
        """Greedy continuation ids of each prompt in one left-padded batch."""
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        stopping = StoppingCriteriaList([_StopAtNewline(self.newline_ids)]) if self.config.stop_at_newline else None
        out = self.model.generate(
            input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
            max_new_tokens=self.config.max_new_tokens, do_sample=False, num_beams=1,
            bad_words_ids=self.banned or None, stopping_criteria=stopping,
            pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id,
            temperature=None, top_p=None, top_k=None)
        new = out[:, width:].tolist()
        result = []
        for row in new:
            # drop padding after a finished row (pad may equal eos)
            while row and row[-1] == pad:
                row.pop()
            result.append(row)
        return result

    def generate(self, prompts: list[str], desc: str = "generating") -> list[str]:
        """Raw continuations (decoded, special tokens skipped), in the order of ``prompts``."""
        encoded = [self.encode(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
        outputs: list[str] = [""] * len(prompts)
        bs = self.config.batch_size
        with tqdm(total=len(prompts), desc=desc, unit="task", disable=not self.progress,
                  file=sys.stderr, leave=False) as bar:
            for start in range(0, len(order), bs):
                idx = order[start:start + bs]
                for i, ids in zip(idx, self.generate_ids([encoded[i] for i in idx])):
                    outputs[i] = self.tokenizer.decode(ids, skip_special_tokens=True)
                bar.update(len(idx))
        return outputs
