"""Teacher-forced scoring with a Hugging Face causal LM: one forward pass over prompt +
target gives each target token's log-probability and whether it is the argmax, and
whether a clean stop (or EOS) follows, under the same prompt encoding, truncation, banned
FIM tokens and per-row adapters as generation.

Shared work.
- Sequences (prompt + target) are ordered by (adapters, token ids) and cut into *runs*:
  consecutive sequences each of which is a token prefix of the next (the same file cut
  before each expected value: an earlier prompt plus its target is where the later prompt
  continues). One forward pass over a run's last sequence scores every member, the LM head
  evaluated only at the positions some member needs; a run also reuses the key/value cache
  of what it shares with the previous run.
- Several adapter *configurations* of the same tasks (an audit: own, mean, shuffled, none)
  are scored together. When no adapter of any configuration touches the decoder layers
  below ``start``, those layers run once per run, without adapter, and each configuration
  runs only layers ``start`` and up from their output, with its own cache of those layers.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from transformers import DynamicCache

from ..lora.config import layer_index
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


def _runs(order: list[int], seqs: list[list[int]], group: list) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in order:
        if runs:
            last = seqs[runs[-1][-1]]
            if group[i] == group[runs[-1][-1]] and seqs[i][:len(last)] == last:
                runs[-1].append(i)
                continue
        runs.append([i])
    return runs


def _decoder_layers(model) -> tuple[nn.Module, nn.ModuleList] | None:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else getattr(inner, "model", None)
    layers = getattr(decoder, "layers", None)
    return (decoder, layers) if isinstance(layers, nn.ModuleList) else None


def shared_lower_layers(model, adapters: list) -> int:
    """How many bottom decoder layers no adapter of ``adapters`` (LoraAdapter or None)
    touches, so that they can run once for every configuration; 0 when the model's layers
    cannot be run in slices (no ``.layers`` list, or layers of mixed attention types)."""
    found = _decoder_layers(model)
    if found is None:
        return 0
    n_layers = len(found[1])
    types = getattr(model.config, "layer_types", None)
    if types is not None and len(set(types)) > 1:
        return 0
    lowest = n_layers - 1              # at least one layer is left to each configuration
    for a in adapters:
        if a is not None:
            for path in a.A:
                i = layer_index(path)
                if i is None:
                    return 0
                lowest = min(lowest, i)
    return max(0, lowest)


@contextmanager
def layer_slice(model, lo: int, hi: int):
    """The decoder runs its layers ``lo`` to ``hi - 1`` only, their attention numbered from
    0 (each slice keeps a cache of its own layers)."""
    decoder, full = _decoder_layers(model)  # type: ignore[misc]
    part = list(full)[lo:hi]
    renumbered = []
    for j, layer in enumerate(part):
        for m in layer.modules():
            if isinstance(getattr(m, "layer_idx", None), int):
                renumbered.append((m, m.layer_idx))
                m.layer_idx = j
    decoder.layers = nn.ModuleList(part)
    try:
        yield decoder
    finally:
        decoder.layers = full
        for m, idx in renumbered:
            m.layer_idx = idx


def _lower_states(decoder, ids, position_ids, mask, cache, cache_arg: str) -> torch.Tensor:
    """The hidden states leaving the (sliced) decoder's last layer, before its final norm."""
    got: list[torch.Tensor] = []
    handle = decoder.norm.register_forward_pre_hook(lambda module, args: got.append(args[0]))
    try:
        decoder(input_ids=ids, position_ids=position_ids, attention_mask=mask, use_cache=True,
                **{cache_arg: cache})
    finally:
        handle.remove()
    return got[0]


class _Scorer:
    """What every pass needs: banned tokens, the clean-stop mask, the generation limits."""

    def __init__(self, generator):
        model, device = generator.model, generator.device
        vocab = model.get_output_embeddings().weight.shape[0]
        stops = getattr(generator, "_clean_stops", None)
        if stops is None:
            stops = generator._clean_stops = clean_stop_mask(generator.tokenizer, vocab, device)
        self.stops, self.device = stops, device
        self.banned = torch.tensor([b[0] for b in generator.banned if b[0] < vocab],
                                   dtype=torch.long, device=device)
        self.max_new = generator.config.max_new_tokens

    def scores(self, logits: torch.Tensor, run: list[int], need: list[int],
               prompts: list[list[int]], targets: list[list[int]]) -> dict[int, TFScore]:
        logits = logits.float()
        if len(self.banned):
            logits[:, self.banned] = float("-inf")
        logp = torch.log_softmax(logits, dim=-1)
        argmax = logits.argmax(-1)
        row_of = {p: r for r, p in enumerate(need)}
        out = {}
        for i in run:
            n = len(targets[i])
            rows = torch.tensor([row_of[len(prompts[i]) - 1 + k] for k in range(n + 1)],
                                device=self.device)
            tgt = torch.tensor(targets[i], dtype=torch.long, device=self.device)
            lp = logp[rows[:n], tgt].sum().item() if n else 0.0
            hits = (argmax[rows[:n]] == tgt) if n else torch.zeros(0, dtype=torch.bool)
            stop_ok = bool(self.stops[argmax[rows[n]]]) or n >= self.max_new
            em = bool(n) and bool(hits.all()) and stop_ok and n <= self.max_new
            out[i] = TFScore(float(lp), n, int(hits.sum().item()), em)
        return out


@torch.inference_mode()
def score_configurations(generator, prompts: list[list[int]], targets: list[list[int]],
                         configs: list[list | None], lora=None, bar=None, on_result=None,
                         start: int | None = None) -> list[list[TFScore]]:
    """Teacher-forced scores of ``targets[i]`` after ``prompts[i]`` (token ids) under each
    configuration (``configs[c][i]``: task i's adapter, or None; a configuration given as
    None has no adapters), as ``out[c][i]``. ``start``: the decoder layers below it run once
    for every configuration (default: all that no adapter touches, when there are several
    configurations; 0 for one). ``on_result(c, i, score)`` as each score is known."""
    model, device = generator.model, generator.device
    n_cfg = len(configs)
    seqs = [p + t for p, t in zip(prompts, targets)]
    groups = [adapter_groups(c, len(seqs)) for c in configs]
    group = [tuple(g[i] for g in groups) for i in range(len(seqs))]
    order = sorted(range(len(seqs)), key=lambda i: (group[i], seqs[i], i))
    if start is None:
        start = shared_lower_layers(model, [a for c in configs if c is not None for a in c]) \
            if n_cfg > 1 else 0
    scorer = _Scorer(generator)
    cache_arg = generator._cache_arg
    out: list[list[TFScore | None]] = [[None] * len(seqs) for _ in configs]
    n_layers = len(_decoder_layers(model)[1]) if start else 0   # type: ignore[index]
    lower = None                                  # the shared lower layers' cache
    caches: list = [None] * n_cfg                 # each configuration's cache
    cached, cached_group = [], None
    for run in _runs(order, seqs, group):
        ids = seqs[run[-1]]
        first = min(len(prompts[i]) - 1 for i in run)     # the first position any member needs
        shared = 0
        if cached and group[run[-1]] == cached_group:
            shared = min(common_prefix_len(cached, ids), first)
        if shared < generator.options.min_shared_tokens:
            shared = 0
            lower = DynamicCache() if start else None
            caches = [DynamicCache() for _ in range(n_cfg)]
        else:
            for c in caches + ([lower] if start else []):
                _crop(c, shared)
        # the positions whose logits some member needs: where each of its target tokens and
        # its stop are predicted, relative to this pass's first token
        need = sorted({p for i in run for p in range(len(prompts[i]) - 1, len(seqs[i]))})
        keep = torch.tensor([p - shared for p in need], dtype=torch.long, device=device)
        position_ids = torch.arange(shared, len(ids), device=device)[None]
        mask = torch.ones((1, len(ids)), dtype=torch.long, device=device)
        tokens = torch.tensor([ids[shared:]], device=device)
        hidden = None
        if start:
            if lora is not None:
                lora.clear()
            with layer_slice(model, 0, start) as decoder:
                hidden = _lower_states(decoder, tokens, position_ids, mask, lower, cache_arg)
        for c, adapters in enumerate(configs):
            if lora is not None:
                lora.set_adapters([adapters[run[-1]] if adapters is not None else None])
            inputs = {"inputs_embeds": hidden} if start else {"input_ids": tokens}
            with layer_slice(model, start, n_layers) if start else nullcontext():
                logits = model(**inputs, position_ids=position_ids, attention_mask=mask,
                               use_cache=True, logits_to_keep=keep,
                               **{cache_arg: caches[c]}).logits[0]
            for i, score in scorer.scores(logits, run, need, prompts, targets).items():
                out[c][i] = score
                if on_result is not None:
                    on_result(c, i, score)
        if bar is not None:
            bar.update(len(run))
        cached, cached_group = ids, group[run[-1]]
    if lora is not None:
        lora.clear()
    return out  # type: ignore[return-value]


def score_sequences(generator, prompts: list[list[int]], targets: list[list[int]],
                    adapters: list | None = None, lora=None, bar=None, on_result=None
                    ) -> list[TFScore]:
    """Teacher-forced scores of ``targets[i]`` after ``prompts[i]`` (token ids), in order,
    with one adapter (or None) per task."""
    report = (lambda c, i, s: on_result(i, s)) if on_result is not None else None
    return score_configurations(generator, prompts, targets, [adapters], lora, bar, report)[0]
