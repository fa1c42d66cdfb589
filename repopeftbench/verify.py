"""Checking a built benchmark against its manifest, and the benchmark's identity.

Every file a build publishes is listed in ``manifest.json`` with its SHA-256. ``verify``
hashes the files and compares: a missing, changed or unlisted table is found before any
stage reads it. Hashes are cached per file under the user cache, keyed by the file's
size, modification and change times and inode, so checking an unchanged benchmark costs a ``stat`` per file.

The identity of a benchmark (``dataset_sha256`` in predictions and results) is a hash
over the hashes of all its files, the manifest included, as measured: two benchmarks
with the same identity hold the same bytes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .io import atomic_write_text, cache_root, sha256_file

# Table files a loader would read even when the manifest does not list them.
_TABLE_SUFFIXES = (".parquet",)


class BenchmarkChangedError(UserError, ValueError):
    """A benchmark's files differ from its manifest; the message names the first one."""


@dataclass
class VerifyReport:
    directory: Path
    n_files: int = 0
    n_hashed: int = 0                    # files read (not taken from the cache)
    problems: list[str] = field(default_factory=list)   # "path: what is wrong"
    identity: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _cache_file(directory: Path) -> Path:
    key = hashlib.sha256(str(directory.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return cache_root() / "verified" / f"{key[:32]}.json"


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def read_manifest(directory: Path) -> dict:
    path = directory / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{directory}: no manifest.json; build the benchmark first "
                                f"(repopeftbench build)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files' object")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BenchmarkChangedError(f"{path}: not a readable benchmark manifest ({exc})") from None
    return manifest


def identity(hashes: dict[str, str]) -> str:
    """The benchmark's identity: SHA-256 over its files' (path, hash) pairs, sorted."""
    text = "".join(f"{rel}\0{digest}\n" for rel, digest in sorted(hashes.items()))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def verify(directory: str | Path, use_cache: bool = True) -> VerifyReport:
    """Compare every file of the benchmark in ``directory`` with its manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    listed: dict[str, str] = dict(manifest["files"])
    report = VerifyReport(directory, n_files=len(listed) + 1)
    cache_path = _cache_file(directory)
    cache = _load_cache(cache_path) if use_cache else {}
    fresh: dict[str, list] = {}
    measured: dict[str, str] = {}
    for rel in sorted(listed) + ["manifest.json"]:
        path = directory / rel
        try:
            st = path.stat()
        except OSError:
            report.problems.append(f"{path}: missing (listed in the manifest)")
            continue
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cache.get(rel)
        if isinstance(hit, list) and len(hit) == len(stamp) + 1 and hit[:-1] == stamp:
            digest = hit[-1]
        else:
            digest = sha256_file(path)
            report.n_hashed += 1
        fresh[rel] = [*stamp, digest]
        measured[rel] = digest
        if rel in listed and digest != listed[rel]:
            report.problems.append(f"{path}: changed since the build (SHA-256 {digest[:12]} "
                                   f"differs from the manifest's {str(listed[rel])[:12]})")
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_file() and path.suffix in _TABLE_SUFFIXES and rel not in listed:
            report.problems.append(f"{path}: a table the manifest does not list")
    report.identity = identity(measured)
    if use_cache and fresh != cache:
        try:
            atomic_write_text(cache_path, json.dumps(fresh, sort_keys=True))
        except OSError:
            pass                          # a read-only cache only costs the hashing again
    return report


def verified_identity(directory: str | Path) -> str:
    """The identity of the benchmark in ``directory``, after checking it; a changed or
    incomplete benchmark is refused with a one-line error naming the first bad file."""
    report = verify(directory)
    if not report.ok:
        more = f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        raise BenchmarkChangedError(f"{report.problems[0]}{more}; the benchmark was modified "
                                    f"after it was built: rebuild it, or run 'repopeftbench "
                                    f"verify {directory}'")
    return report.identity
