"""Checkpoints and provenance: a trained method's checkpoint record (``method.json``), its
fingerprint, and the revisions of the model and packages a run records. Methods import
this, never the harness."""
from __future__ import annotations

import hashlib
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from repopeftbench import __version__
from repopeftbench.dataset import Benchmark
from repopeftbench.errors import UserError
from repopeftbench.io import read_json_file, sha256_file, sha256_text

from .models import ALIASES
from .registry import Method

CHECKPOINT_FILE = "method.json"


def _pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def model_revision(name: str) -> str:
    """A stable identity of the model weights without hashing gigabytes."""
    if name in ALIASES:
        dists = [m.replace("_", "-") for m in ALIASES[name].packages]
        return ",".join(f"{d}=={_pkg(d)}" for d in dists)
    path = Path(name)
    if path.is_dir():
        parts = [(path / "config.json").read_text() if (path / "config.json").exists() else ""]
        parts += [f"{f.name}:{f.stat().st_size}" for f in sorted(path.iterdir())
                  if f.suffix in (".safetensors", ".bin", ".gguf")]
        return "sha256:" + sha256_text("\n".join(parts))[:16]
    return name


def package_versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), "repopeftbench": __version__,
            **{p: _pkg(p) for p in ("torch", "transformers", "peft", "pyarrow", "tree-sitter")}}


def checkpoint_fingerprint(directory: Path) -> str:
    """SHA-256 over every file of a checkpoint (paths and contents)."""
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(directory).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()[:20]


def checkpoint_record(method: Method, track: str, model: str, bench: Benchmark) -> dict:
    uses_model = type(method).uses_model
    return {"method": method.name, "options": method.config(), "track": track,
            "model": {"name": model if uses_model else None,
                      "revision": model_revision(model) if uses_model else None},
            "dataset_sha256": bench.sha256, "seed": method.context.seed,
            "repopeftbench": __version__}


def read_checkpoint(directory: str | Path, method_name: str | None = None) -> dict:
    """The record of a checkpoint directory, checked against the method that will use it."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.exists():
        raise UserError(f"{directory}: not a checkpoint ({CHECKPOINT_FILE} is missing); "
                        f"make one with 'repopeftbench train'")
    record = read_json_file(path, "checkpoint record")
    if not isinstance(record, dict):
        raise UserError(f"{path}: the checkpoint record is not a JSON object")
    if method_name is not None and record.get("method") != method_name:
        raise UserError(f"{directory}: checkpoint of method {record.get('method')!r}, not of "
                        f"{method_name!r}")
    return record


