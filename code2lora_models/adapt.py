"""``repopeftbench adapt``: any local git repository -> a PEFT adapter, with a checkpoint.

Static reads the non-test .py/.md/.rst files at HEAD (as the context table does). Evo
starts its state from the HEAD snapshot (a diff against the empty tree, as in training)
and stores the state beside the adapter; ``--update`` folds every first-parent commit
since the adapter's commit that touches production code into that state and rewrites the
adapter. The sidecar ``code2lora.json`` records repository, commit, checkpoint, encoder.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from repopeftbench.errors import UserError
from repopeftbench.io import atomic_write_text, read_json_file, read_safetensors

from .bundle import Code2LoRABundle
from .repo_embedding import split_diff

SIDECAR = "code2lora.json"
STATE_FILE = "code2lora_state.safetensors"
METHODS = ("code2lora-static", "code2lora-evo")


def _open_repo(path: str | Path):
    from miners.git import GitError, GitRepo
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{path}: no such directory")
    try:
        repo = GitRepo(p)
        head = repo.resolve("HEAD")
    except GitError as exc:
        raise UserError(f"{path}: not a git repository ({exc})") from None
    if head is None:
        raise UserError(f"{path}: the repository has no commit")
    return repo, head


def _load(checkpoint: str | Path, model: str | None) -> tuple[Code2LoRABundle, dict, str]:
    from evaluators.harness import read_checkpoint
    record = read_checkpoint(checkpoint)
    if record.get("method") not in METHODS:
        raise UserError(f"{checkpoint}: checkpoint of method {record.get('method')!r}; adapt "
                        f"needs a Code2LoRA checkpoint ({', '.join(METHODS)})")
    bundle = Code2LoRABundle.load(Path(checkpoint) / "hypernetwork")
    name = model or bundle.base_model
    bundle.check(name)
    return bundle, record, name


def _encoder(bundle: Code2LoRABundle, model_name: str, device: str) -> None:
    model = tokenizer = None
    if bundle.encoder_config.name == "base":
        from evaluators.models import load_model
        model, tokenizer, _ = load_model(model_name, device)
    bundle.attach_encoder(device, model, tokenizer, progress=False)


def _write(bundle: Code2LoRABundle, z: torch.Tensor, out: Path, sidecar: dict,
           state: torch.Tensor | None) -> Path:
    from safetensors.torch import save_file
    adapter = bundle.adapters(z[None], [sidecar["repository"]])[0]
    adapter.save(out)
    if state is not None:
        save_file({"state": state.detach().cpu().contiguous()}, str(out / (STATE_FILE + ".tmp")))
        (out / (STATE_FILE + ".tmp")).replace(out / STATE_FILE)
    atomic_write_text(out / SIDECAR, json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return out


def adapt(repo_path: str | Path, checkpoint: str | Path, out: str | Path,
          model: str | None = None, device: str = "cpu") -> Path:
    """Write a PEFT adapter for the repository at ``repo_path`` into ``out``."""
    from evaluators.harness import checkpoint_fingerprint
    from miners.context_miner import mine_context

    repo, head = _open_repo(repo_path)
    bundle, record, model_name = _load(checkpoint, model)
    repo_id = Path(repo_path).resolve().name
    sidecar = {"repository": str(Path(repo_path).resolve()), "commit": head,
               "checkpoint": str(Path(checkpoint).resolve()),
               "checkpoint_sha256": checkpoint_fingerprint(Path(checkpoint)),
               "method": record["method"], "encoder": bundle.encoder_identity,
               "base_model": model_name}
    with repo:
        files = mine_context(repo, head, repo_id).rows
        if not any(f["path"].endswith(".py") for f in files):
            raise UserError(f"{repo_path}: no non-test Python file at {head[:12]}; Code2LoRA "
                            f"encodes a repository's production code")
        _encoder(bundle, model_name, device)
        assert bundle.cache is not None
        if bundle.kind == "static":
            z = torch.from_numpy(bundle.cache.snapshot(repo_id, head, [f["content"] for f in files]))
            return _write(bundle, z, Path(out), sidecar, None)
        from miners.evolution_miner import empty_tree, production_diffs
        tree = repo.run(["rev-parse", f"{head}^{{tree}}"]).strip()
        diff = production_diffs(repo, [(empty_tree(repo), tree)], 1_000_000, Counter())[0]
    assert bundle.gru is not None
    with torch.no_grad():
        state = bundle.gru.run(torch.from_numpy(bundle.diff_vector(repo_id, head, diff))[None])[-1]
    return _write(bundle, state, Path(out), {**sidecar, "commits_folded": 0}, state)


def update(directory: str | Path, device: str = "cpu") -> Path:
    """Fold the commits since an Evo adapter's commit into its state; rewrite the adapter."""
    from miners.evolution_miner import production_diffs

    d = Path(directory)
    if not (d / SIDECAR).exists():
        raise UserError(f"{d}: no {SIDECAR}; not an adapter written by 'repopeftbench adapt'")
    sidecar = read_json_file(d / SIDECAR, "adapter sidecar")
    if not (d / STATE_FILE).exists():
        raise UserError(f"{d}: no stored GRU state; --update needs an adapter made with a "
                        f"code2lora-evo checkpoint")
    bundle, _, model_name = _load(sidecar["checkpoint"], sidecar["base_model"])
    if bundle.encoder_identity != sidecar["encoder"]:
        raise UserError(f"{d}: adapter made with encoder {sidecar['encoder']!r}, the checkpoint "
                        f"now holds {bundle.encoder_identity!r}")
    repo, head = _open_repo(sidecar["repository"])
    state = read_safetensors(d / STATE_FILE)["state"]
    with repo:
        if repo._run_raw(["merge-base", "--is-ancestor", sidecar["commit"], head],
                         check=False).returncode != 0:
            raise UserError(f"{d}: the adapter's commit {sidecar['commit'][:12]} is not an "
                            f"ancestor of HEAD of {sidecar['repository']} (history rewritten?)")
        shas = repo.run(["rev-list", "--first-parent", "--reverse",
                         f"{sidecar['commit']}..{head}"]).split()
        pairs = [(repo.run(["rev-parse", f"{s}^^{{tree}}"]).strip(),
                  repo.run(["rev-parse", f"{s}^{{tree}}"]).strip()) for s in shas]
        diffs = production_diffs(repo, pairs, 1_000_000, Counter())
    steps = [(s, t) for s, t in zip(shas, diffs) if split_diff(t)]
    _encoder(bundle, model_name, device)
    assert bundle.cache is not None and bundle.gru is not None
    repo_id = Path(sidecar["repository"]).name
    with torch.no_grad():
        for sha, diff in steps:
            state = bundle.gru.step(state[None], torch.from_numpy(
                bundle.diff_vector(repo_id, sha, diff))[None])[0]
    sidecar.update(commit=head, commits_folded=int(sidecar.get("commits_folded", 0)) + len(steps))
    return _write(bundle, state, d, sidecar, state)
