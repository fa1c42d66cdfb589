"""Read-only access to a git directory through the git CLI.

Nothing here checks out a work tree, runs hooks or writes into the repository:
every command runs with hooks and fsmonitor disabled, and blobs are read with one
long-lived ``git cat-file --batch`` process that is always closed.
"""
from __future__ import annotations

import os
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
        if self._batch is None:
            self._batch = subprocess.Popen(self._cmd(["cat-file", "--batch"]), env=git_env(),
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL)
        assert self._batch.stdin and self._batch.stdout
        self._batch.stdin.write(oid.encode() + b"\n")
        self._batch.stdin.flush()
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
