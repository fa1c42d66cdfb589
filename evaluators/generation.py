"""Hugging Face transformers generation backend, following the decoding protocol of SPEC
section 8: greedy, at most 64 new tokens, input left-truncated to 4096 tokens, FIM special
tokens banned, each row stopping at the end of its line. Prompts are batched by length."""
from __future__ import annotations

import inspect
import sys
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from repopeftbench.metrics import FIM_TOKENS


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 64
    max_input_tokens: int = 4096
    batch_size: int = 8
    stop_at_newline: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


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
        # transformers renamed ``past_key_values`` to ``cache`` in forward(); accept both
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

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
        """Greedy continuation ids of each prompt, decoded together from one left-padded batch.

        A row leaves the batch (and the KV cache) as soon as it ends its line or emits EOS,
        so short answers do not pay for long ones: the decode loop costs what a per-task
        loop costs, while the prompts are encoded and decoded in batches.
        """
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        stop = self.newline_ids.to(self.device) if self.config.stop_at_newline else \
            torch.empty(0, dtype=torch.long, device=self.device)
        if eos is not None:
            stop = torch.cat([stop, torch.tensor([eos], device=self.device)])
        banned = torch.tensor([b[0] for b in self.banned], dtype=torch.long, device=self.device)
        cache = DynamicCache()
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, **{self._cache_arg: cache})
        logits = out.logits[:, -1, :]
        next_pos = positions[:, -1] + 1
        alive = list(range(len(batch)))
        results: list[list[int]] = [[] for _ in batch]
        for step in range(self.config.max_new_tokens):
            if len(banned):
                logits[:, banned] = float("-inf")
            tokens = logits.argmax(-1)
            for row, tok in zip(alive, tokens.tolist()):
                results[row].append(tok)
            if step == self.config.max_new_tokens - 1:
                break
            keep = (~torch.isin(tokens, stop)).nonzero().squeeze(-1)
            if keep.numel() == 0:
                break
            if keep.numel() < len(alive):  # finished rows leave the batch and the cache
                cache.batch_select_indices(keep)
                mask, next_pos, tokens = mask[keep], next_pos[keep], tokens[keep]
                alive = [alive[i] for i in keep.tolist()]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
            out = self.model(input_ids=tokens[:, None], attention_mask=mask,
                             position_ids=next_pos[:, None], use_cache=True, **{self._cache_arg: cache})
            next_pos = next_pos + 1
            logits = out.logits[:, -1, :]
        return results

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


class _StopAtNewline(StoppingCriteria):
    """Per-row stop once the newest token contains a line break (for ``model.generate``)."""

    def __init__(self, newline_ids: torch.Tensor):
        self.newline_ids = newline_ids

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.isin(input_ids[:, -1], self.newline_ids.to(input_ids.device))


@torch.inference_mode()
def reference_generate(generator: HFGenerator, prompts: list[str]) -> list[str]:
    """The naive reference: one ``model.generate`` call per prompt, same protocol.
    The throughput benchmark and the tests compare the batched decoder against it."""
    model, tok, cfg = generator.model, generator.tokenizer, generator.config
    out = []
    for prompt in prompts:
        ids = torch.tensor([generator.encode(prompt)], device=generator.device)
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=cfg.max_new_tokens, do_sample=False, num_beams=1,
                             bad_words_ids=generator.banned or None,
                             stopping_criteria=StoppingCriteriaList([_StopAtNewline(generator.newline_ids)]),
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             temperature=None, top_p=None, top_k=None)
        out.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
    return out
