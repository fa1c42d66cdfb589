"""Atomic, deterministic file output shared by every stage."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, row_group_size=10_000,
                       use_dictionary=True, write_statistics=True)


def cache_root() -> Path:
    """The user cache (predictions, converted models, verified hashes)."""
    return Path(os.environ.get("REPOPEFTBENCH_CACHE", Path.home() / ".cache" / "repopeftbench"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the mode of a normally created one (0644 under a 022
    umask; ``mkstemp`` makes it 0600) and rename it into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and fixed separators: equal objects give equal bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, canonical_json(obj))


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(path, text)


def write_parquet(path: str | os.PathLike, table: pa.Table) -> None:
    """Write a Parquet file atomically; identical tables give identical bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, **PARQUET_OPTIONS)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_parquet(path: str | os.PathLike) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc


def read_json_file(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """A JSON file's value; any problem (unreadable, not UTF-8, invalid, nested too deep)
    is a one-line ``UserError`` naming the file."""
    from .errors import UserError
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: the {what} is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: the {what} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise UserError(f"{path}: the {what} is nested too deeply to read") from None


def read_safetensors(path: str | os.PathLike) -> dict:
    """Tensors of a safetensors file; a truncated or damaged one is a one-line
    ``UserError`` naming the file."""
    from safetensors.torch import load_file

    from .errors import UserError
    if not Path(path).is_file():
        raise UserError(f"{path}: missing")
    try:
        return load_file(str(path))
    except Exception as exc:        # SafetensorError, OSError, ValueError: all "damaged"
        raise UserError(f"{path}: not a readable safetensors file "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SplitWriter:
    """Streams rows into one Parquet file per split, each written to a temporary file and
    renamed into place on ``close``; splits that got no rows have no file (stale ones are
    removed). Row groups follow ``write`` calls, so the same calls give the same bytes."""

    def __init__(self, directory: str | os.PathLike, schema: pa.Schema, splits: Iterable[str]):
        self.directory = Path(directory)
        self.schema = schema
        self.splits = list(splits)
        self.sizes = {s: 0 for s in self.splits}
        self._writers: dict[str, tuple[pq.ParquetWriter, str]] = {}

    def write(self, split: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if split not in self._writers:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{split}.", suffix=".tmp")
            os.close(fd)
            options = {k: v for k, v in PARQUET_OPTIONS.items() if k != "row_group_size"}
            self._writers[split] = (pq.ParquetWriter(tmp, self.schema, **options), tmp)
        self._writers[split][0].write_table(table, row_group_size=PARQUET_OPTIONS["row_group_size"])
        self.sizes[split] += table.num_rows

    def close(self) -> dict[str, int]:
        for split in self.splits:
            final = self.directory / f"{split}.parquet"
            if split in self._writers:
                writer, tmp = self._writers.pop(split)
                writer.close()
                publish(tmp, final)
            else:
                final.unlink(missing_ok=True)
        return dict(self.sizes)

    def abort(self) -> None:
        for writer, tmp in self._writers.values():
            writer.close()
            Path(tmp).unlink(missing_ok=True)
        self._writers.clear()
