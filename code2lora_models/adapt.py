"""``repopeftbench adapt``: any local git repository -> a PEFT adapter, with a checkpoint.

Static reads the non-test .py/.md/.rst files at HEAD (as the context table does). Evo
folds what evaluation folds: the kept commits up to HEAD (those that add or change an
assertion in a test file, found by the evolution miner), each with its production diff
since the previous kept commit, the first against the empty tree; it stores the GRU state
and the replay state beside the adapter, and ``--update`` folds the kept commits since
then and rewrites the adapter. The sidecar ``code2lora.json`` records repository, commit,
checkpoint, encoder and replay.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from repopeftbench.errors import UserError
from repopeftbench.io import atomic_write_text, read_json_file, read_safetensors

from evaluators.models import model_source

from .bundle import Code2LoRABundle

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
    from evaluators.checkpoints import read_checkpoint
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
    from evaluators.checkpoints import checkpoint_fingerprint
    from miners.context_miner import mine_context

    from .codes import snapshot_texts

    repo, head = _open_repo(repo_path)
    bundle, record, model_name = _load(checkpoint, model)
    repo_id = Path(repo_path).resolve().name
    sidecar = {"repository": str(Path(repo_path).resolve()), "commit": head,
               "checkpoint": str(Path(checkpoint).resolve()),
               "checkpoint_sha256": checkpoint_fingerprint(Path(checkpoint)),
               "method": record["method"], "encoder": bundle.encoder_identity,
               "base_model": model_name, "base_model_source": model_source(model_name)}
    with repo:
        files = mine_context(repo, head, repo_id).rows
        if not any(f["path"].endswith(".py") for f in files):
            raise UserError(f"{repo_path}: no non-test Python file at {head[:12]}; Code2LoRA "
                            f"encodes a repository's production code")
        _encoder(bundle, model_name, device)
        assert bundle.cache is not None
        if bundle.kind == "static":
            kind, texts = snapshot_texts(repo_id, files, bundle.encoder_config.inputs,
                                         bundle.encoder_config.card_chars)
            z = torch.from_numpy(bundle.cache.many([(repo_id, head, kind, texts)])[0])
            return _write(bundle, z, Path(out), sidecar, None)
        kept, replay = kept_commit_diffs(repo, head, repo_id)
    if not kept:
        raise UserError(f"{repo_path}: no commit adds or changes an assertion in a test file; "
                        f"Code2LoRA-Evo folds those commits (as evaluation does), so it has "
                        f"nothing to fold")
    assert bundle.gru is not None
    with torch.no_grad():
        state = bundle.gru.run(torch.from_numpy(_diff_vectors(bundle, repo_id, kept)))[-1]
    return _write(bundle, state, Path(out), {**sidecar, "commits_folded": len(kept),
                                             "replay": replay}, state)


def kept_commit_diffs(repo, head: str, repo_id: str, replay: dict | None = None
                      ) -> tuple[list[tuple[str, str]], dict]:
    """The kept commits up to ``head`` (those adding or changing an assertion, as the
    benchmark's evolution track keeps them) with their production diffs since the previous
    kept commit (the first against the empty tree): the sequence evaluation folds. With
    ``replay`` (a stored replay state), only the commits after it. Returns the commits and
    the new replay state."""
    from miners.evolution_miner import EvolutionMinerConfig, EvolutionState, mine_evolution

    commits: list[dict] = []
    state = EvolutionState.from_dict(replay) if replay else EvolutionState()
    result = mine_evolution(repo, head, repo_id, EvolutionMinerConfig(), state,
                            commit_sink=commits.extend)
    return [(c["commit_sha"], c["production_code_diff"]) for c in commits], result.state.to_dict()


def _diff_vectors(bundle: Code2LoRABundle, repo_id: str, kept: list[tuple[str, str]]) -> np.ndarray:
    """(T, d) diff vectors, encoded as evaluation encodes the commits table's diffs."""
    return np.stack([bundle.diff_vector(repo_id, sha, diff) for sha, diff in kept])


def update(directory: str | Path, device: str = "cpu") -> Path:
    """Fold the commits since an Evo adapter's commit into its state; rewrite the adapter."""
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
        if "replay" not in sidecar:
            raise UserError(f"{d}: made by an older 'adapt' that did not fold the kept commits; "
                            f"make the adapter again with 'repopeftbench adapt'")
        kept, replay = kept_commit_diffs(repo, head, Path(sidecar["repository"]).name,
                                         sidecar["replay"])
    _encoder(bundle, model_name, device)
    assert bundle.cache is not None and bundle.gru is not None
    repo_id = Path(sidecar["repository"]).name
    if kept:
        with torch.no_grad():
            state = bundle.gru.run(torch.from_numpy(_diff_vectors(bundle, repo_id, kept)),
                                   start=state)[-1]
    sidecar.update(commit=head, replay=replay,
                   commits_folded=int(sidecar.get("commits_folded", 0)) + len(kept))
    return _write(bundle, state, d, sidecar, state)
