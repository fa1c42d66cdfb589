"""Read-only access to a git directory through the git CLI.

Nothing here checks out a work tree, runs hooks or writes into the repository:
every command runs with hooks and fsmonitor disabled, and blobs are read with one
long-lived ``git cat-file --batch`` process that is always closed.
"""
from __future__ import annotations

import itertools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Options that keep git from running anything configured inside a mined repository.
SAFE_OPTIONS = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                "-c", "safe.directory=*", "-c", "core.quotePath=false",
                "-c", "protocol.file.allow=always"]


class GitError(RuntimeError):
    """A git command failed; the message names the repository and the command."""


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C",
                "GIT_OPTIONAL_LOCKS": "0", "GIT_ASKPASS": "/bin/true"})
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    kind: str  # "blob" or "commit" (submodule)
    oid: str
    size: int  # -1 for submodules
    path: str

    @property
    def is_symlink(self) -> bool:
        return self.mode == "120000"


class GitRepo:
    """A git directory (bare or not) read through the git CLI."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._batch: subprocess.Popen | None = None
        out = self._run_raw(["rev-parse", "--absolute-git-dir"], check=False)
        if out.returncode != 0:
            raise GitError(f"{self.path}: not a git repository "
                           f"({out.stderr.decode(errors='replace').strip() or 'rev-parse failed'})")
        self.git_dir = Path(out.stdout.decode().strip())

    def _cmd(self, args: list[str]) -> list[str]:
        return ["git", *SAFE_OPTIONS, "-C", str(self.path), *args]

    def _run_raw(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(args), capture_output=True, env=git_env(),
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"{self.path}: git {' '.join(args[:3])} failed: "
                           f"{err[-1] if err else 'exit ' + str(proc.returncode)}")
        return proc

    def run(self, args: list[str]) -> str:
        return self._run_raw(args).stdout.decode("utf-8", errors="surrogateescape")

    # --- commits -----------------------------------------------------------------
    def resolve(self, rev: str = "HEAD") -> str | None:
        proc = self._run_raw(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def is_shallow(self) -> bool:
        return (self.git_dir / "shallow").exists()

    def commit_time(self, sha: str) -> int:
        return int(self.run(["show", "-s", "--format=%ct", sha]).strip())

    def last_commit_before(self, rev: str, timestamp: int) -> str | None:
        out = self.run(["rev-list", "-1", "--first-parent", f"--before={timestamp}", rev]).strip()
        return out or None

    def first_parent_index(self, sha: str) -> int:
        return int(self.run(["rev-list", "--count", "--first-parent", sha]).strip()) - 1

    def root_commit_time(self, rev: str) -> int:
        roots = self.run(["rev-list", "--max-parents=0", "--first-parent", rev]).split()
        return min(self.commit_time(r) for r in roots)

    # --- trees and blobs -----------------------------------------------------------
    def ls_tree(self, sha: str) -> list[TreeEntry]:
        out = self._run_raw(["ls-tree", "-r", "-z", "--long", "--full-tree", sha]).stdout
        entries = []
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, _, path = rec.partition(b"\t")
            mode, kind, oid, size = meta.split(None, 3)
            entries.append(TreeEntry(mode.decode(), kind.decode(), oid.decode(),
                                     int(size) if size.strip() != b"-" else -1,
                                     path.decode("utf-8", errors="surrogateescape")))
        return entries

    def read_blob(self, oid: str) -> bytes | None:
        """Bytes of a blob, or None when the object is missing from the repository."""
        return self.read_blobs([oid])[oid]

    def read_blobs(self, oids: list[str], per_round: int = 256) -> dict[str, bytes | None]:
        """Bytes of several blobs (None for a missing one), asked for ``per_round`` at a
        time down one ``cat-file --batch`` pipe: one round trip per round, not per blob.
        (A round's requests, 41 bytes each, fit in the pipe's buffer, so writing them
        all before reading cannot block.)"""
        if self._batch is None:
            self._batch = subprocess.Popen(self._cmd(["cat-file", "--batch"]), env=git_env(),
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL)
        out: dict[str, bytes | None] = {}
        todo = list(dict.fromkeys(oids))
        for at in range(0, len(todo), per_round):
            chunk = todo[at:at + per_round]
            assert self._batch.stdin
            self._batch.stdin.write(b"".join(o.encode() + b"\n" for o in chunk))
            self._batch.stdin.flush()
            for oid in chunk:
                out[oid] = self._read_one()
        return out

    def _read_one(self) -> bytes | None:
        assert self._batch is not None and self._batch.stdout
        header = self._batch.stdout.readline()
        if not header:
            self.close()
            raise GitError(f"{self.path}: git cat-file --batch ended unexpectedly")
        parts = header.split()
        if len(parts) < 3 or parts[1] == b"missing":
            return None
        size = int(parts[2])
        data = self._batch.stdout.read(size)
        self._batch.stdout.read(1)  # trailing newline
        return data

    def close(self) -> None:
        if self._batch is not None:
            for stream in (self._batch.stdin, self._batch.stdout):
                try:
                    stream.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            try:
                self._batch.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._batch.kill()
                self._batch.wait()
            self._batch = None

    def __enter__(self) -> "GitRepo":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Change:
    """One file of a commit's raw diff against its first parent."""
    status: str        # A, M, D, T, R (C is treated as A)
    old_mode: str
    new_mode: str
    old_oid: str
    new_oid: str
    path: str          # path after the commit (before, for deletions)
    old_path: str      # path before the commit (== path unless renamed)


@dataclass
class LogCommit:
    sha: str
    parents: list[str]
    author_time: int
    commit_time: int
    tree: str
    changes: list[Change]


_ZERO = "0" * 40


def _read_tokens(stream, chunk_size: int = 1 << 16):
    """NUL-separated tokens of a byte stream, read incrementally."""
    buf = b""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        buf += chunk
        parts = buf.split(b"\0")
        buf = parts.pop()
        yield from parts
    if buf:
        yield buf


def iter_first_parent_log(repo: GitRepo, rev_range: str):
    """Commits of ``rev_range`` on the first-parent chain, oldest first, with raw diffs
    against the first parent (the empty tree for a root), renames detected.

    One ``git log`` process streams the whole history; memory stays bounded.
    """
    cmd = repo._cmd(["log", "--first-parent", "--reverse", "--diff-merges=first-parent", "--root",
                     "-M", "--raw", "--no-abbrev", "-z", "--no-color", "--format=%x01%H %P%x00%at %ct %T",
                     rev_range, "--"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=git_env())
    assert proc.stdout is not None
    current: LogCommit | None = None
    tokens = _read_tokens(proc.stdout)
    try:
        for tok in tokens:
            tok = tok.lstrip(b"\n")
            if tok.startswith(b"\x01"):
                if current is not None:
                    yield current
                shas = tok[1:].decode().split()
                times = next(tokens).decode().split()
                current = LogCommit(shas[0], shas[1:], int(times[0]), int(times[1]), times[2], [])
            elif tok.startswith(b":") and current is not None:
                old_mode, new_mode, old_oid, new_oid, status = tok[1:].decode().split()
                path = next(tokens).decode("utf-8", errors="surrogateescape")
                old_path = path
                if status[0] in "RC":
                    path = next(tokens).decode("utf-8", errors="surrogateescape")
                kind = "A" if status[0] == "C" else status[0]
                current.changes.append(Change(kind, old_mode, new_mode, old_oid, new_oid, path,
                                              old_path if kind == "R" else path))
        if current is not None:
            yield current
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        code = proc.wait()
        if proc.stderr:
            proc.stderr.close()
    if code != 0:
        raise GitError(f"{repo.path}: git log failed: {err.splitlines()[-1] if err else code}")


_PAIR_LINE = re.compile(rb"(?m)^[0-9a-f]{40,64} [0-9a-f]{40,64}(?:\n|\Z)")


def diff_tree_pairs(repo: GitRepo, pairs: list[tuple[str, str]], pathspecs: list[str]) -> list[bytes]:
    """Unified diffs between many (tree, tree) pairs with one ``git diff-tree --stdin``."""
    if not pairs:
        return []
    cmd = repo._cmd(["diff-tree", "--stdin", "-p", "--no-color", "--no-renames", "--", *pathspecs])
    text = "".join(f"{a} {b}\n" for a, b in pairs).encode()
    proc = subprocess.run(cmd, input=text, capture_output=True, env=git_env())
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"{repo.path}: git diff-tree failed: {err[-1] if err else proc.returncode}")
    # each pair's diff follows the echo of its "tree tree" line (no diff line starts with a
    # hex digit); the first len(pairs) such lines are the echoes
    heads = list(itertools.islice(_PAIR_LINE.finditer(proc.stdout), len(pairs)))
    ends = [m.start() for m in heads[1:]] + [len(proc.stdout)]
    out = [proc.stdout[m.end():end] for m, end in zip(heads, ends)]
    if len(out) != len(pairs):
        raise GitError(f"{repo.path}: git diff-tree answered {len(out)} diffs for {len(pairs)} pairs")
    return out
