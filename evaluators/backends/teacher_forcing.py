"""Teacher-forced scoring with a Hugging Face causal LM: one forward pass over prompt +
target gives each target token's log-probability and whether it is the argmax, and
whether a clean stop (or EOS) follows, under the same prompt encoding, truncation, banned
FIM tokens and per-row adapters as generation.

Shared work. Sequences (prompt + target) are ordered by (adapter, token ids) and cut into
*runs*: consecutive sequences each of which is a token prefix of the next (the same file
cut before each expected value: an earlier prompt plus its target is where the later
prompt continues). One forward pass over a run's last sequence scores every member, the
LM head evaluated only at the positions some member needs; a run also reuses the
key/value cache of what it shares with the previous run.
"""
from __future__ import annotations

import torch
from transformers import DynamicCache

from .base import TFScore, is_clean_stop
from .sharing import adapter_groups, common_prefix_len, crop as _crop


def clean_stop_mask(tokenizer, vocab_size: int, device) -> torch.Tensor:
    """(vocab,) bool: the tokens that end a completion cleanly (``is_clean_stop``) or EOS."""
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    for token, i in tokenizer.get_vocab().items():
        if i < vocab_size and is_clean_stop(tokenizer.convert_tokens_to_string([token])):
            mask[i] = True
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id < vocab_size:
        mask[tokenizer.eos_token_id] = True
    return mask.to(device)


def _runs(order: list[int], seqs: list[list[int]], group: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in order:
        if runs:
            last = seqs[runs[-1][-1]]
            if group[i] == group[runs[-1][-1]] and seqs[i][:len(last)] == last:
                runs[-1].append(i)
                continue
        runs.append([i])
    return runs


@torch.inference_mode()
def score_sequences(generator, prompts: list[list[int]], targets: list[list[int]],
                    adapters: list | None = None, lora=None, bar=None, on_result=None
                    ) -> list[TFScore]:
    """Teacher-forced scores of ``targets[i]`` after ``prompts[i]`` (token ids), in order."""
    model, device, cfg = generator.model, generator.device, generator.config
    seqs = [p + t for p, t in zip(prompts, targets)]
    group = adapter_groups(adapters, len(seqs))
    order = sorted(range(len(seqs)), key=lambda i: (group[i], seqs[i], i))
    vocab = model.get_output_embeddings().weight.shape[0]
    stops = getattr(generator, "_clean_stops", None)
    if stops is None:
        stops = generator._clean_stops = clean_stop_mask(generator.tokenizer, vocab, device)
    banned = torch.tensor([b[0] for b in generator.banned if b[0] < vocab], dtype=torch.long,
                          device=device)
    out: list[TFScore | None] = [None] * len(seqs)
    cache, cached, cached_group = None, [], -1
    for run in _runs(order, seqs, group):
        ids = seqs[run[-1]]
        start = min(len(prompts[i]) - 1 for i in run)     # the first position any member needs
        shared = 0
        if cache is not None and group[run[-1]] == cached_group:
            shared = min(common_prefix_len(cached, ids), start)
        if shared < cfg.min_shared_tokens:
            shared, cache = 0, DynamicCache()
        else:
            _crop(cache, shared)
        if lora is not None:
            lora.set_adapters([adapters[run[-1]] if adapters is not None else None])
        # the positions whose logits some member needs: where each of its target tokens and
        # its stop are predicted, relative to this pass's first token
        need = sorted({p for i in run for p in range(len(prompts[i]) - 1, len(seqs[i]))})
        keep = torch.tensor([p - shared for p in need], dtype=torch.long, device=device)
        logits = model(input_ids=torch.tensor([ids[shared:]], device=device),
                       position_ids=torch.arange(shared, len(ids), device=device)[None],
                       attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
                       use_cache=True, logits_to_keep=keep,
                       **{generator._cache_arg: cache}).logits[0].float()
        if len(banned):
            logits[:, banned] = float("-inf")
        logp = torch.log_softmax(logits, dim=-1)
        argmax = logits.argmax(-1)
        row_of = {p: r for r, p in enumerate(need)}
        for i in run:
            n = len(targets[i])
            rows = torch.tensor([row_of[len(prompts[i]) - 1 + k] for k in range(n + 1)],
                                device=device)
            tgt = torch.tensor(targets[i], dtype=torch.long, device=device)
            lp = logp[rows[:n], tgt].sum().item() if n else 0.0
            hits = (argmax[rows[:n]] == tgt) if n else torch.zeros(0, dtype=torch.bool)
            stop_ok = bool(stops[argmax[rows[n]]]) or n >= cfg.max_new_tokens
            em = bool(n) and bool(hits.all()) and stop_ok and n <= cfg.max_new_tokens
            out[i] = TFScore(float(lp), n, int(hits.sum().item()), em)
            if on_result is not None:
                on_result(i, out[i])
            if bar is not None:
                bar.update(1)
        cached, cached_group = ids, group[run[-1]]
    if lora is not None:
        lora.clear()
    return out  # type: ignore[return-value]

