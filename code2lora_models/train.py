"""Training Code2LoRA-Static or -Evo on a benchmark's training tasks."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import torch

from evaluators.lora.config import LoraSpec, top_layers
from evaluators.lora.model import PerRowLora
from repopeftbench.errors import UserError

from .bundle import Code2LoRABundle
from .evo import DiffGRU
from .hypernetwork import Code2LoRA, module_layout
from .options import Code2LoRAOptions
from .training import EvoCodes, HyperLM, HyperTrainer, LearnedCodes, StaticCodes


def train_hypernetwork(kind: str, bench, tasks: list[dict], options: Code2LoRAOptions,
                       context, title: str, prompt=None) -> Code2LoRABundle:
    """Train on ``tasks`` (rows of the track's training split); the Trainer state, loss
    curve and result go under the run's artifacts directory. ``prompt(task)``: the
    training prompt (default: the prefix; a context provider's otherwise)."""
    from evaluators.checkpoints import model_revision
    from evaluators.models import load_model
    from evaluators.training import encode_tasks, train_causal_lm

    if options.objective not in ("lm", "reconstruct"):
        raise UserError(f"objective={options.objective}: use lm (the frozen model's loss) or "
                        f"reconstruct (reproduce the targets= adapters)")
    if options.objective == "reconstruct" and kind != "static":
        raise UserError("objective=reconstruct is Code2LoRA-Static's (one target adapter per "
                        "training repository)")
    if options.objective == "reconstruct" and not options.targets:
        raise UserError("objective=reconstruct needs targets= (a per-repo-lora checkpoint "
                        "trained on the same repositories)")
    torch.manual_seed(context.seed)
    model, tokenizer, _ = load_model(context.model_name, context.device)
    bundle = Code2LoRABundle(kind, None, options.encoder_config(), "",  # type: ignore[arg-type]
                             context.model_name, model_revision(context.model_name))
    bundle.attach_encoder(context.device, model, tokenizer, progress=context.progress)
    repos = sorted({t["repo_id"] for t in tasks})

    lora = PerRowLora(model, LoraSpec(options.r, options.alpha, tuple(options.target_modules),
                                      top_layers(model, options.top_layers)))
    shapes, layers = module_layout(lora.layers)
    if kind == "static" and options.encoder == "table":
        # a free vector per training repository, learned with the head (no text read)
        from .encoder import TABLE_DIM
        codes = LearnedCodes(len(repos), TABLE_DIM, context.seed)
        hyper = Code2LoRA(TABLE_DIM, options.hypernet_config(standardise=False), shapes, layers)
        index = {r: i for i, r in enumerate(repos)}
        rows = [index[t["repo_id"]] for t in tasks]
    elif kind == "static":
        vectors = bundle.snapshot_codes(bench, repos)
        table = torch.from_numpy(np.stack([vectors[r] for r in repos]))   # (repos, d_in)
        hyper = Code2LoRA(table.shape[1], options.hypernet_config(), shapes, layers)
        hyper.fit_input_stats(table)
        codes: torch.nn.Module = StaticCodes(table)
        index = {r: i for i, r in enumerate(repos)}
        rows = [index[t["repo_id"]] for t in tasks]
    else:
        from .codes import diff_sequences
        bundle.diff_sections, bundle.diff_headers = options.diff_sections, options.diff_headers
        seqs = diff_sequences(bench, bundle.cache, repos, context.progress,  # type: ignore[arg-type]
                              options.diff_sections, options.diff_headers)
        gru = DiffGRU(next(iter(seqs.values()))[1].shape[1], options.evo_config())
        gru.fit_input_stats(torch.from_numpy(np.concatenate([s for _, s in seqs.values()])))
        hyper = Code2LoRA(options.state_dim, options.hypernet_config(standardise=False), shapes, layers)
        position = {r: {c: k for k, c in enumerate(idx)} for r, (idx, _) in seqs.items()}
        for t in tasks:
            if t["commit_index"] not in position[t["repo_id"]]:
                raise UserError(f"{bench.dir}: training task {t['task_id']} is at commit "
                                f"{t['commit_index']} of {t['repo_id']}, missing from the commits table")
        items = sorted({(t["repo_id"], position[t["repo_id"]][t["commit_index"]]) for t in tasks})
        item_index = {it: i for i, it in enumerate(items)}
        codes = EvoCodes(gru, {r: torch.from_numpy(s) for r, (_, s) in seqs.items()}, items)
        rows = [item_index[(t["repo_id"], position[t["repo_id"]][t["commit_index"]])] for t in tasks]
        bundle.gru = gru
    if options.init_shared:
        _init_shared(hyper, options, top_layers(model, options.top_layers))
    bundle.hyper = hyper

    if options.objective == "reconstruct":
        return _reconstruct(bundle, hyper, codes, repos, tasks, options, context, tokenizer, title)

    examples = encode_tasks(tokenizer, tasks, options.max_seq_len, prompt)
    for example, row in zip(examples, rows):
        example["row"] = row
    net = HyperLM(model, lora, hyper, codes, options.contrastive, options.margin, options.update_l2)
    layers = top_layers(model, options.top_layers)
    if layers:                   # the frozen layers below the adapters: computed once
        from evaluators.lower_cache import LowerLayerCache
        lora.clear()
        for i, example in enumerate(examples):
            example["index"] = i
        net.lower_cache = LowerLayerCache(model, examples, layers[0],
                                          model_revision(context.model_name), context.device,
                                          progress=context.progress)
    out = context.artifacts("hypernetwork_training")
    result = train_causal_lm(net, tokenizer, examples, options.train_config(context.seed), out,
                             context.device, title=title, trainer_cls=HyperTrainer,
                             progress=context.progress)
    (out / "train_result.json").write_text(json.dumps(
        {**result.to_dict(), "n_tasks": len(tasks), "n_repos": len(repos),
         "options": asdict(options)}, indent=2))
    hyper.eval()
    _keep_table(bundle, codes, repos)
    if bundle.gru is not None:
        bundle.gru.eval()
    bundle.extra = {"train": {"steps": result.steps, "train_loss": result.train_loss,
                              "wall_time_s": result.wall_time_s, "tokens_per_s": result.tokens_per_s,
                              "n_tasks": len(tasks), "n_repos": len(repos)}}
    return bundle


def _keep_table(bundle: Code2LoRABundle, codes: torch.nn.Module, repos: list[str]) -> None:
    """encoder=table: the learned vectors go into the checkpoint with their repositories."""
    if isinstance(codes, LearnedCodes):
        bundle.table, bundle.table_repos = codes.table.detach().cpu().clone(), repos


def _reconstruct(bundle: Code2LoRABundle, hyper: Code2LoRA, codes: torch.nn.Module,
                 repos: list[str], tasks: list[dict], options: Code2LoRAOptions, context,
                 tokenizer, title: str) -> Code2LoRABundle:
    """``objective=reconstruct``: train the hypernetwork to reproduce each training
    repository's adapter of the per-repo-lora checkpoint ``targets=`` (one example per
    repository; the language model makes no forward pass)."""
    from evaluators.training import train_causal_lm

    from .reconstruct import Reconstruction, load_targets
    net = Reconstruction(hyper, codes, load_targets(options.targets, repos), options.targets)
    start = net.relative_errors()
    examples = [{"input_ids": [0], "labels": [0], "row": i} for i in range(len(repos))]
    out = context.artifacts("hypernetwork_training")
    result = train_causal_lm(net, tokenizer, examples, options.train_config(context.seed), out,
                             context.device, title=title + ": relative reconstruction error",
                             trainer_cls=HyperTrainer, progress=context.progress)
    hyper.eval()
    errors = net.relative_errors()
    _keep_table(bundle, codes, repos)
    summary = {"steps": result.steps, "train_loss": result.train_loss,
               "wall_time_s": result.wall_time_s, "n_tasks": len(tasks), "n_repos": len(repos),
               "objective": "reconstruct", "targets": options.targets,
               # ||G - T||^2 / ||T - S||^2 per repository, before and after training
               "relative_error_start": round(sum(start) / len(start), 6),
               "relative_error": round(sum(errors) / len(errors), 6),
               "relative_error_by_repo": {r: round(e, 6) for r, e in zip(repos, errors)}}
    (out / "train_result.json").write_text(json.dumps(
        {**result.to_dict(), **summary, "options": asdict(options)}, indent=2))
    bundle.extra = {"train": summary}
    return bundle


def _init_shared(hyper: Code2LoRA, options: Code2LoRAOptions, layers: tuple[int, ...]) -> None:
    """``init_shared=``: the residual head's shared LoRA is a trained adapter (frozen),
    after checking it is the LoRA these options describe."""
    from evaluators.lora.peft_format import check_same_lora, find_adapter_dir, load_peft_adapter
    if options.head != "residual":
        raise UserError(f"init_shared={options.init_shared}: only the residual head has a "
                        f"shared LoRA (head={options.head})")
    d = find_adapter_dir(options.init_shared, "init_shared")
    config, tensors = load_peft_adapter(d)
    check_same_lora(config, options.r, options.alpha, options.target_modules, layers,
                    f"init_shared={options.init_shared}")
    hyper.head.load_shared(tensors, str(d))
