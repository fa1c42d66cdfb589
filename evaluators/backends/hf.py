"""Hugging Face transformers generation backend, following the decoding protocol of SPEC
section 8: greedy, at most 64 new tokens, input left-truncated to 4096 tokens, FIM special
tokens banned, each row stopping at the end of its line. Prompts are batched by length.

Rows of different LoRA adapters share batches through the per-row LoRA layers; rows
without one run on the base model.

The scheduling below is the backend's own (``HFOptions``, ``--backend-option KEY=VALUE``),
not the protocol's: no option changes a prediction. Shared prefixes (``reuse_prefix``, on
every device): prompts are ordered by (adapter, token
ids), so prompts that share a prefix (the same file cut at different places, the same
imports and class header) are neighbours. Prompts that are prefixes of a later one but for
a short tail form a run, encoded in one pass; each run keeps the key/value cache of its
longest common prefix with the previous run and computes only the rest. The tails and
the decode steps of up to ``max(batch_size, decode_batch_size)`` prompts are then computed
together, over their caches stacked and left-padded (see ``_generate_sharing``). Without
``reuse_prefix``, prompts are batched by length with left padding.
"""
from __future__ import annotations

import functools
import inspect
import sys
import types
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from tqdm import tqdm
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from repopeftbench.metrics import FIM_TOKENS

from .base import (Adapter, AdapterWeights, GenerationBackend, GenerationConfig, Request,
                   TFScore, adapter_key, encode_prompt, parse_backend_options, same_prompts,
                   tensors_nbytes)
from .sharing import adapter_groups, common_prefix_len as _common_prefix_len, crop as _crop


@dataclass(frozen=True)
class HFOptions:
    """How the HF backend schedules the work (``--backend-option KEY=VALUE``); never what
    is predicted. Prefix sharing keeps the key/value cache of the previous prompt's longest
    common token prefix when at least ``min_shared_tokens`` are shared; prompts that are
    prefixes of a run's last one but for ``max_tail_tokens`` at most are encoded with it;
    up to max(``batch_size``, ``decode_batch_size``) prompts are decoded together."""
    batch_size: int | None = None      # None: the device's default
    reuse_prefix: bool = True
    min_shared_tokens: int = 8
    decode_batch_size: int = 8
    max_tail_tokens: int = 4


class HFGenerator:
    """Greedy decoding of token ids with a Hugging Face causal LM (batched, KV cache)."""

    def __init__(self, model, tokenizer, config: GenerationConfig = GenerationConfig(),
                 progress: bool = True, options: HFOptions | None = None):
        self.device = next(model.parameters()).device
        options = options or HFOptions()
        if options.batch_size is None:
            options = replace(options,
                              batch_size=GenerationBackend.default_batch_size(self.device.type))
        self.model, self.tokenizer, self.config, self.progress = model, tokenizer, config, progress
        self.options = options
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        vocab = tokenizer.get_vocab()
        self.banned = [[vocab[t]] for t in FIM_TOKENS if t in vocab]
        newline = [i for t, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([t])]
        self.newline_ids = torch.tensor(sorted(newline), dtype=torch.long)
        # transformers renamed ``past_key_values`` to ``cache`` in forward(); accept both
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # only the last position's logits are needed after a prompt: without this the LM head
        # runs over every prompt token (49k-wide logits for each of up to 4,096 positions)
        self._last_logits = next(({k: 1} for k in ("logits_to_keep", "num_logits_to_keep")
                                  if k in params), {})

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a prompt under the protocol (``encode_prompt``: BOS, left-truncated)."""
        return encode_prompt(self.tokenizer, prompt, self.config.max_input_tokens)

    @torch.inference_mode()
    def generate_ids(self, batch: list[list[int]], model=None, adapters: list | None = None,
                     lora=None) -> list[list[int]]:
        """Greedy continuation ids of each prompt, decoded together from one left-padded batch.

        A row leaves the batch (and the KV cache) as soon as it ends its line or emits EOS,
        so short answers do not pay for long ones: the decode loop costs what a per-task
        loop costs, while the prompts are encoded and decoded in batches.
        """
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        model = model if model is not None else self.model
        if lora is not None:
            lora.set_adapters(adapters or [None] * len(batch))   # one adapter per row
        cache = DynamicCache()
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                    use_cache=True, **{self._cache_arg: cache}, **self._last_logits)
        return self._decode(model, cache, mask, positions[:, -1] + 1, out.logits[:, -1, :], lora)

    def _decode(self, model, cache, mask: torch.Tensor, next_pos: torch.Tensor,
                logits: torch.Tensor, lora=None) -> list[list[int]]:
        """The greedy decode loop over a batch whose prompts are in ``cache``: ``mask``
        (rows, cached positions) marks real tokens, ``next_pos`` (rows,) is each row's next
        position and ``logits`` (rows, vocab) its next-token logits. A row leaves the batch
        (its cache rows and adapter rows too) once it ends its line or emits EOS."""
        stop = self._stop_ids()
        banned = torch.tensor([b[0] for b in self.banned], dtype=torch.long, device=self.device)
        _grow_in_place(cache, mask.shape[1] + self.config.max_new_tokens)
        alive = list(range(mask.shape[0]))
        results: list[list[int]] = [[] for _ in alive]
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
                if lora is not None:
                    lora.select_rows(keep)  # ... and so do their adapters
                mask, next_pos, tokens = mask[keep], next_pos[keep], tokens[keep]
                alive = [alive[i] for i in keep.tolist()]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
            out = model(input_ids=tokens[:, None], attention_mask=mask,
                        position_ids=next_pos[:, None], use_cache=True, **{self._cache_arg: cache})
            next_pos = next_pos + 1
            logits = out.logits[:, -1, :]
        return results

    def _stop_ids(self) -> torch.Tensor:
        stop = self.newline_ids.to(self.device) if self.config.stop_at_newline else \
            torch.empty(0, dtype=torch.long, device=self.device)
        eos = self.tokenizer.eos_token_id
        if eos is not None:
            stop = torch.cat([stop, torch.tensor([eos], device=self.device)])
        return stop

    @torch.inference_mode()
    def generate(self, prompts: list[str], desc: str = "generating", model=None,
                 bar: tqdm | None = None, adapters: list | None = None, lora=None,
                 on_result=None) -> list[str]:
        """Raw continuations (decoded, special tokens skipped), in the order of ``prompts``;
        with ``lora``, row i runs with ``adapters[i]`` (rows of any adapters share batches);
        ``on_result(i, text)`` as each row finishes."""
        encoded = [self.encode(p) for p in prompts]
        outputs: list[str] = [""] * len(prompts)
        bs = self.options.batch_size
        assert bs is not None
        own_bar = bar is None
        if bar is None:
            bar = tqdm(total=len(prompts), desc=desc, unit="task", disable=not self.progress,
                       file=sys.stderr, leave=False)
        if self.options.reuse_prefix:     # every device: one code path, batched
            for i, ids in self._generate_sharing(encoded, model, adapters, lora, bar):
                outputs[i] = self.tokenizer.decode(ids, skip_special_tokens=True)
                if on_result is not None:
                    on_result(i, outputs[i])
        else:
            order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
            for start in range(0, len(order), bs):
                idx = order[start:start + bs]
                row_adapters = [adapters[i] for i in idx] if adapters is not None else None
                for i, ids in zip(idx, self.generate_ids([encoded[i] for i in idx], model,
                                                         row_adapters, lora)):
                    outputs[i] = self.tokenizer.decode(ids, skip_special_tokens=True)
                    if on_result is not None:
                        on_result(i, outputs[i])
                bar.update(len(idx))
        if own_bar:
            bar.close()
        if lora is not None:
            lora.clear()
        return outputs

    def _generate_sharing(self, encoded: list[list[int]], model, adapters: list | None, lora,
                          bar: tqdm):
        """(index, continuation ids) per prompt, computing each shared prefix once.

        Prompts are ordered by (adapter, token ids), so that those sharing a prefix are
        neighbours, and cut into *runs*: consecutive prompts that are, but for their last
        ``max_tail_tokens`` tokens at most, prefixes of the run's last prompt (the same file
        cut at several places). The run's last prompt is encoded, reusing the cache of its
        longest common prefix with the previous run's; every prompt of the run then takes
        its keys and values from that cache and leaves its tail to its first decode step.
        Up to ``max(batch_size, decode_batch_size)`` prompts are decoded together: tails
        and decode steps are batched (on a CPU a forward pass costs at least one read of
        every weight, whatever the tokens it computes), and each shared prefix is computed
        once, in one long forward pass rather than piecemeal.
        """
        group = adapter_groups(adapters, len(encoded))
        order = sorted(range(len(encoded)), key=lambda i: (group[i], encoded[i], i))
        model = model if model is not None else self.model
        max_tail = max(1, self.options.max_tail_tokens)
        rows = max(self.options.batch_size or 1, self.options.decode_batch_size)   # decoded together
        cache, cached = None, []      # the cache, and the tokens it holds (a leader's all but last)
        lora_rows: object = ()        # what the LoRA layers hold: one adapter's, or a batch's
        pending: list[tuple[int, int, list | None]] = []   # prompt index, tokens cached, kv
        runs = _runs_of(order, encoded, group, max_tail)
        for n, run in enumerate(runs):
            lead = run[-1]
            ids = encoded[lead]
            body = ids[:-1]                                    # the leader's last token is its tail
            shared = 0
            if cache is not None and group[lead] == group[runs[n - 1][-1]]:
                shared = _common_prefix_len(cached, body)
            if shared < self.options.min_shared_tokens:
                shared, cache = 0, None
            else:
                _crop(cache, shared)
            if len(body) > shared:
                adapter = adapters[lead] if adapters is not None else None
                if lora is not None and lora_rows != (id(adapter),):
                    lora.set_adapters([adapter])
                    lora_rows = (id(adapter),)
                cache = cache if cache is not None else DynamicCache()
                model(input_ids=torch.tensor([body[shared:]], device=self.device),
                      position_ids=torch.arange(shared, len(body), device=self.device)[None],
                      attention_mask=torch.ones((1, len(body)), dtype=torch.long, device=self.device),
                      use_cache=True, **{self._cache_arg: cache}, **self._last_logits)
            cached = body if cache is not None else []
            # views of the cache's keys and values: later runs crop or extend the cache into
            # new tensors, never in place (the prediction tests would see it)
            kv = _kv(cache) if cache is not None and cached else None
            for i in run:
                pending.append((i, min(_common_prefix_len(encoded[i], body), len(encoded[i]) - 1), kv))
            while len(pending) >= rows or (n == len(runs) - 1 and pending):
                batch, pending = pending[:rows], pending[rows:]
                if lora is not None:
                    lora.set_adapters([adapters[j] if adapters is not None else None for j, _, _ in batch])
                    lora_rows = ()
                for (j, _, _), out in zip(batch, self._decode_pending(batch, encoded, model, lora)):
                    bar.update(1)
                    yield j, out

    def _decode_pending(self, batch: list[tuple[int, int, list | None]], encoded: list[list[int]],
                        model, lora) -> list[list[int]]:
        """Decode prompts whose first tokens are in caches: every row's tail (what its cache
        lacks; rows are evened to the longest tail by recomputing a few cached tokens) is
        computed in one step over the caches stacked and left-padded, then decoded."""
        tail = max(len(encoded[i]) - have for i, have, _ in batch)
        keep = [max(0, len(encoded[i]) - tail) for i, _, _ in batch]    # cached tokens used, per row
        width, rows = max(keep), len(batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((rows, tail), pad, dtype=torch.long)
        mask = torch.zeros((rows, width + tail), dtype=torch.long)
        for r, ((i, _, _), k) in enumerate(zip(batch, keep)):
            ids = encoded[i][k:]
            input_ids[r, tail - len(ids):] = torch.tensor(ids)
            mask[r, width - k:] = 1
            mask[r, width:width + tail - len(ids)] = 0
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width:]
        # the rows' caches are stacked once, straight into buffers with room for the tail
        # and every decode step, which then append in place
        capacity = width + tail + self.config.max_new_tokens
        cache = DynamicCache()
        if width:
            layers = next(kv for _, _, kv in batch if kv is not None)
            for layer in range(len(layers)):
                bufs = []
                for part in range(2):                                  # keys, values
                    t0 = layers[layer][part]
                    buf = t0.new_empty((rows, t0.shape[1], capacity, t0.shape[3]))
                    for r, ((_, _, kv), n) in enumerate(zip(batch, keep)):
                        buf[r, :, :width - n] = 0                      # left padding
                        if n:
                            buf[r, :, width - n:width] = kv[layer][part][0, :, :n]
                    bufs.append(buf)
                _seat(cache, layer, bufs[0], bufs[1], width)
        _grow_in_place(cache, capacity)
        model = model if model is not None else self.model
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                    use_cache=True, **{self._cache_arg: cache}, **self._last_logits)
        return self._decode(model, cache, mask, positions[:, -1] + 1, out.logits[:, -1, :], lora)


def _runs_of(order: list[int], encoded: list[list[int]], group: list[int],
             max_tail: int) -> list[list[int]]:
    """``order`` cut into runs: consecutive prompts of one group, each of which, but for its
    last ``max_tail`` tokens at most, is a prefix of the run's last prompt's all-but-last
    tokens (ordered prompts: the prefix a prompt shares with a later one is the least of
    the neighbours' common prefixes between them)."""
    runs: list[list[int]] = []
    run: list[int] = []
    shared: list[int] = []     # per member: tokens it shares with the run's last prompt's body
    for i in order:
        if run and group[i] == group[run[-1]]:
            last = encoded[run[-1]]
            body = encoded[i][:-1]
            lcp = _common_prefix_len(last, body)
            new = [min(s, lcp) for s in shared[:-1]] + [min(lcp, len(last) - 1)]
            if all(len(encoded[j]) - s <= max_tail for j, s in zip(run, new)):
                run.append(i)
                shared = new + [len(encoded[i]) - 1]
                continue
        if run:
            runs.append(run)
        run, shared = [i], [len(encoded[i]) - 1]
    if run:
        runs.append(run)
    return runs


def _grow_in_place(cache, capacity: int) -> None:
    """Make each layer of a ``DynamicCache`` append a decode step in place, into buffers of
    ``capacity`` positions, instead of concatenating: a concatenation copies the whole
    cache at every step (for 8 rows of 1,000 cached tokens, a quarter of a step's time on
    a CPU). The first step copies the cache into its buffer once; so does the step after
    rows leave the batch (``batch_select_indices`` makes new tensors). Caches without
    ``layers`` (transformers < 4.56) keep concatenating."""
    for layer in getattr(cache, "layers", None) or []:
        if not hasattr(layer, "keys") or getattr(layer, "is_sliding", False):
            return                                  # not a plain dynamic layer: leave it
        layer.update = types.MethodType(functools.partial(_append_in_place, capacity=capacity), layer)


def _seat(cache, layer: int, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
    """Make the first ``length`` positions of the buffers ``keys``, ``values`` (rows, heads,
    capacity, dim) layer ``layer`` of an empty-so-far ``DynamicCache``, without copying
    them where the cache has ``layers`` (``_append_in_place`` then writes after them)."""
    if not hasattr(cache, "layers"):                               # transformers < 4.56
        cache.update(keys[..., :length, :], values[..., :length, :], layer)
        return
    cache.update(keys[..., :0, :], values[..., :0, :], layer)      # creates the layer
    seated = cache.layers[layer]
    seated.keys, seated.values = keys[..., :length, :], values[..., :length, :]
    seated._buffers = (keys, values)


def _append_in_place(layer, key_states: torch.Tensor, value_states: torch.Tensor, *args,
                     capacity: int, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    keys, values = layer.keys, layer.values
    have = keys.shape[-2] if keys is not None and keys.dim() == 4 else 0
    end = have + key_states.shape[-2]
    buf = getattr(layer, "_buffers", None)
    if buf is None or have == 0 or buf[0].data_ptr() != keys.data_ptr() \
            or buf[0].shape[0] != key_states.shape[0] or end > buf[0].shape[-2]:
        size = max(capacity, end)
        buf = (key_states.new_empty(*key_states.shape[:2], size, key_states.shape[-1]),
               value_states.new_empty(*value_states.shape[:2], size, value_states.shape[-1]))
        if have:
            buf[0][..., :have, :] = keys
            buf[1][..., :have, :] = values
        layer._buffers = buf
        layer.is_initialized = True
    buf[0][..., have:end, :] = key_states
    buf[1][..., have:end, :] = value_states
    layer.keys, layer.values = buf[0][..., :end, :], buf[1][..., :end, :]
    return layer.keys, layer.values


def _kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer of a key/value cache (any transformers version)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache))       # transformers < 4.56


class HFBackend(GenerationBackend):
    """The reference backend: transformers models; LoRA adapters applied per row (rows of
    different adapters, and rows without one, share batches)."""

    name = "hf"
    Options = HFOptions
    MAX_CACHED_ADAPTERS = 64
    MAX_CACHED_ADAPTER_BYTES = 2 << 30

    def __init__(self, model, tokenizer, config: GenerationConfig = GenerationConfig(),
                 progress: bool = True, options: HFOptions | None = None):
        self.generator = HFGenerator(model, tokenizer, config, progress, options)
        self.model, self.tokenizer = model, tokenizer
        self.progress = progress
        self._lora = None                                      # PerRowLora, once needed
        self._adapters: OrderedDict[str, object] = OrderedDict()  # key -> LoraAdapter (LRU)

    @classmethod
    def load(cls, model_name: str, device: str, config: GenerationConfig,
             progress: bool = True, options: list[str] | dict | HFOptions | None = None
             ) -> "HFBackend":
        options = parse_backend_options(HFOptions, options, "hf")   # bad ones before loading
        from ..models import load_model
        model, tokenizer, _ = load_model(model_name, device)
        return cls(model, tokenizer, config, progress, options)

    def _adapter(self, key: str, adapter: Adapter):
        """The adapter as per-row LoRA factors, read once (an LRU of recent adapters)."""
        from ..lora.model import LoraAdapter

        if key in self._adapters:
            self._adapters.move_to_end(key)
            return self._adapters[key]
        if isinstance(adapter, AdapterWeights):
            loaded = LoraAdapter.from_peft_tensors(adapter.config, adapter.tensors, adapter.name,
                                                   source=f"adapter {adapter.name!r}")
        else:
            loaded = LoraAdapter.load(adapter)
        self._adapters[key] = loaded
        # at most MAX_CACHED_ADAPTERS, and MAX_CACHED_ADAPTER_BYTES of them (a leave-one-out
        # mean of per-layer adapters is of full rank: hundreds of MB each)
        while len(self._adapters) > 1 and (
                len(self._adapters) > self.MAX_CACHED_ADAPTERS or
                sum(map(adapter_bytes, self._adapters.values())) > self.MAX_CACHED_ADAPTER_BYTES):
            self._adapters.popitem(last=False)
        return loaded

    def _per_row(self, adapters: list) -> object:
        """The model's per-row LoRA layers, covering every target module of ``adapters``."""
        from ..lora.config import LoraSpec
        from ..lora.model import PerRowLora

        targets = sorted({t for a in adapters if a is not None for t in a.spec.target_modules})
        if self._lora is None or not set(targets) <= set(self._lora.spec.target_modules):
            known = set(self._lora.spec.target_modules) if self._lora is not None else set()
            self._lora = PerRowLora(self.model, LoraSpec(target_modules=tuple(sorted(known | set(targets)))))
        return self._lora

    def generate(self, requests: list[Request], desc: str = "generating",
                 on_result=None) -> list[str]:
        prompts = [r.prompt for r in requests]
        keys = [adapter_key(r.adapter) for r in requests]
        if all(k is None for k in keys):
            return self.generator.generate(prompts, desc, on_result=on_result)
        adapters = [self._adapter(k, r.adapter) if k is not None else None
                    for k, r in zip(keys, requests)]
        return self.generator.generate(prompts, desc, adapters=adapters,
                                       lora=self._per_row(adapters), on_result=on_result)


    def score_targets(self, requests: list[Request], targets: list[str], desc: str = "scoring",
                      on_result=None) -> list[TFScore]:
        report = (lambda c, i, sc: on_result(i, sc)) if on_result is not None else None
        return self.score_configurations([requests], targets, desc, report)[0]

    def score_configurations(self, configs: list[list[Request]], targets: list[str],
                             desc: str = "scoring", on_result=None) -> list[list[TFScore]]:
        from .base import encode_target
        from .teacher_forcing import score_configurations

        if not same_prompts(configs):        # prompts differ (e.g. examples before them)
            return super().score_configurations(configs, targets, desc, on_result)
        prompts = [self.generator.encode(r.prompt) for r in configs[0]]
        tgt = [encode_target(self.tokenizer, t) for t in targets]
        adapters: list[list | None] = []
        for requests in configs:
            keys = [adapter_key(r.adapter) for r in requests]
            adapters.append([self._adapter(k, r.adapter) if k is not None else None
                             for k, r in zip(keys, requests)]
                            if any(k is not None for k in keys) else None)
        used = [a for c in adapters if c is not None for a in c]
        lora = self._per_row(used) if used else None
        bar = tqdm(total=len(targets), desc=desc, unit="task", disable=not self.progress,
                   file=sys.stderr, leave=False)
        try:
            return score_configurations(self.generator, prompts, tgt, adapters, lora, bar,
                                        on_result)
        finally:
            bar.close()


def adapter_bytes(adapter) -> int:
    """The memory of a loaded LoRA adapter's factors (a tensor shared by several modules, once)."""
    return tensors_nbytes((*adapter.A.values(), *adapter.B.values()))


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
