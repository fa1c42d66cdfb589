"""Reading the repository list (CSV or JSONL) into ``RepoSpec`` records.

Required columns: ``repo_id`` and ``url`` (a remote URL, or a local path to a git
directory, bare ones included; relative paths are relative to the list file).
Optional: ``sha`` (pinned commit), ``license``, ``stars``, ``created_at``, ``split``
(a forced cross-repo split such as ``ood``).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from repopeftbench.errors import UserError
from repopeftbench.schema import CROSS_REPO_SPLITS

_ALIASES = {"licence": "license", "commit_sha": "sha", "pinned_sha": "sha",
            "cross_repo_split": "split", "name": "repo_id"}
_SHA_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
_REMOTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[^/\s]+@[^/\s]+:")


MAX_FIELD_CHARS = 10_000   # a URL, path or id longer than this is a mistake, not a row


class RepoListError(UserError, ValueError):
    """The repository list itself cannot be read."""


@dataclass(frozen=True)
class RepoSpec:
    repo_id: str
    url: str
    sha: str | None = None
    license: str | None = None
    stars: int | None = None
    created_at: str | None = None
    split: str | None = None
    source: str = ""  # "file:line" the row came from, for messages
    base_dir: str = ""  # directory of the list file; relative local paths start there

    @property
    def is_remote(self) -> bool:
        return bool(_REMOTE_RE.match(self.url))

    @property
    def location(self) -> str:
        """Where to read the repository: the URL, or the local path made absolute."""
        if self.is_remote:
            return self.url
        path = Path(self.url).expanduser()
        return str(path if path.is_absolute() else (Path(self.base_dir) / path).resolve())

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BadRow:
    source: str
    repo_id: str | None
    reason: str


def _parse_row(raw: dict, source: str, base_dir: Path) -> RepoSpec:
    row = {}
    for key, value in raw.items():
        if key is None:
            raise ValueError("more values than header columns")
        key = _ALIASES.get(key.strip().lower(), key.strip().lower())
        if isinstance(value, str):
            value = value.strip()
        row[key] = None if value in ("", None) else value
    for required in ("repo_id", "url"):
        if not row.get(required):
            raise ValueError(f"missing required field '{required}'")
    repo_id, url = str(row["repo_id"]), str(row["url"])
    if any(c in repo_id for c in "\n\r\t") or repo_id.startswith("/") or ".." in repo_id.split("/"):
        raise ValueError(f"invalid repo_id {repo_id!r}")
    sha = row.get("sha")
    if sha is not None and not _SHA_RE.match(str(sha)):
        raise ValueError(f"pinned sha {sha!r} is not a hexadecimal commit id")
    stars = row.get("stars")
    if stars is not None:
        try:
            stars = int(float(stars))
        except (TypeError, ValueError):
            raise ValueError(f"stars {stars!r} is not a number") from None
    split = row.get("split")
    if split is not None:
        split = str(split).replace("-", "_")
        if split not in CROSS_REPO_SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(CROSS_REPO_SPLITS)}")
    created = row.get("created_at")
    return RepoSpec(repo_id=repo_id, url=url, sha=str(sha).lower() if sha else None,
                    license=row.get("license"), stars=stars,
                    created_at=str(created) if created is not None else None,
                    split=split, source=source, base_dir=str(base_dir))


def read_repo_list(path: str | Path) -> tuple[list[RepoSpec], list[BadRow]]:
    """Parse a list; returns good rows and bad rows (each bad row says file:line and why).

    Raises ``RepoListError`` when the file as a whole is unusable.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RepoListError(f"{path}: cannot read repository list ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RepoListError(f"{path}: repository list is not UTF-8 (byte {exc.start})") from exc
    base_dir = path.parent.resolve()
    raw_rows: list[tuple[str, dict | None, str | None]] = []
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raw_rows.append((f"{path}:{lineno}", None, f"invalid JSON ({exc.msg})"))
                continue
            if not isinstance(obj, dict):
                raw_rows.append((f"{path}:{lineno}", None, "a JSON object is expected"))
                continue
            raw_rows.append((f"{path}:{lineno}", obj, None))
    elif suffix in (".csv", ".tsv"):
        limit = csv.field_size_limit()
        csv.field_size_limit(len(text) + 1)   # any field parses; long ones are bad rows below
        try:
            reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
            try:
                fieldnames = reader.fieldnames
            except csv.Error as exc:
                raise RepoListError(f"{path}:1: unreadable header ({exc})") from None
            if not fieldnames:
                raise RepoListError(f"{path}: empty repository list (no header row)")
            names = {_ALIASES.get(n.strip().lower(), n.strip().lower()) for n in fieldnames}
            missing = {"repo_id", "url"} - names
            if missing:
                raise RepoListError(f"{path}: header lacks required column(s) "
                                    f"{', '.join(sorted(missing))}")
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise RepoListError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
                long = [k for k, v in row.items() if isinstance(v, str) and len(v) > MAX_FIELD_CHARS]
                raw_rows.append((f"{path}:{reader.line_num}", None if long else row,
                                 f"field {long[0]!r} is longer than {MAX_FIELD_CHARS} characters"
                                 if long else None))
        finally:
            csv.field_size_limit(limit)
    else:
        raise RepoListError(f"{path}: unknown list format '{suffix}' (use .csv, .tsv or .jsonl)")

    good: list[RepoSpec] = []
    bad: list[BadRow] = []
    seen: dict[str, str] = {}
    for source, raw, error in raw_rows:
        repo_id = str(raw.get("repo_id")) if raw and raw.get("repo_id") else None
        if error is None:
            try:
                spec = _parse_row(raw, source, base_dir)
            except ValueError as exc:
                error = str(exc)
            else:
                if spec.repo_id in seen:
                    error = f"duplicate repo_id {spec.repo_id!r} (first at {seen[spec.repo_id]})"
                else:
                    seen[spec.repo_id] = source
                    good.append(spec)
                    continue
        bad.append(BadRow(source=source, repo_id=repo_id, reason=error))
    if not good and not bad:
        raise RepoListError(f"{path}: repository list has no rows")
    return good, bad
