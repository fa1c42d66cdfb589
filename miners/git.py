"""Read-only access to a mined git directory through the git CLI, in which nothing of the
repository configures git.

The mechanism (a *shadow* git directory). Git reads a repository's own ``config`` (and
whatever it includes) on every command, and several keys there run programs
(``gpg.program`` with ``log.showSignature``, ``core.pager``, ``diff.external``, textconv
and filter drivers, ``core.fsmonitor``, hooks, ``core.sshCommand``, ...). Overriding each
key is a list that grows with every git release, so git is never pointed at the mined
repository's directory at all. Each ``GitRepo`` makes a private temporary git directory of
its own, owned by us, holding

- a ``config`` we write (bare, hooks off, no pager, no attributes file, and the object
  format the repository declares: the only key read from its configuration, parsed with
  ``git config --file --no-includes``, which runs nothing);
- copies of ``HEAD``, ``packed-refs``, the loose refs and ``shallow`` (data, not
  configuration; symbolic links among them are not followed outside the repository);

and git runs with ``GIT_DIR`` set to it and ``GIT_OBJECT_DIRECTORY`` set to the
repository's object store, with the system and global configuration and every inherited
``GIT_*`` variable removed. Program-running keys are also overridden on the command line
and ``--no-show-signature``/``--no-ext-diff``/``--no-textconv`` passed, as a second wall.
The repository's ``config``, ``info/attributes``, hooks, include files and work tree are
never read, so nothing there can run. For the same reason git's ownership check
(``safe.directory``), which exists to stop a foreign repository's configuration from
running programs, is not needed: the shadow directory is ours, and a repository owned by
another user is read as safely as our own. A repository whose object store borrows objects
from elsewhere (``objects/info/alternates``) is refused: git would read outside it.

Blobs are read with one long-lived ``git cat-file --batch`` process that is always closed.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repopeftbench.splits import valid_timestamp


class GitError(RuntimeError):
    """A git command failed; the message names the repository and the command."""


# Command-line overrides (the highest-priority configuration), a second wall behind the
# shadow directory: keys known to make git run a program or read another file.
SAFE_OPTIONS = ["--no-pager",
                "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                "-c", "core.pager=cat", "-c", "core.editor=/bin/false",
                "-c", "core.sshCommand=/bin/false", "-c", "core.askPass=/bin/true",
                "-c", "core.attributesFile=/dev/null", "-c", "core.quotePath=false",
                "-c", "log.showSignature=false", "-c", "gpg.program=/bin/false",
                "-c", "gpg.ssh.program=/bin/false", "-c", "gpg.x509.program=/bin/false",
                "-c", "credential.helper=", "-c", "gc.auto=0", "-c", "maintenance.auto=false"]


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every git command: the caller's minus every ``GIT_*`` variable
    (``GIT_EXTERNAL_DIFF``, ``GIT_PAGER``, ``GIT_CONFIG_PARAMETERS``, ``GIT_SSH_COMMAND``,
    ... configure git too), no system or global configuration, no prompts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ATTR_NOSYSTEM": "1", "LC_ALL": "C",
                "GIT_OPTIONAL_LOCKS": "0", "GIT_ASKPASS": "/bin/true", "GIT_PAGER": "cat",
                "GIT_NO_REPLACE_OBJECTS": "1", "GIT_NO_LAZY_FETCH": "1"})
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class GitLayout:
    """Where a repository keeps its files: ``git_dir`` holds HEAD (a linked work tree has
    its own), ``common_dir`` the objects and refs."""
    git_dir: Path
    common_dir: Path

    @property
    def objects(self) -> Path:
        return self.common_dir / "objects"


def _read_pointer(path: Path, prefix: str) -> str | None:
    """The value of a one-line ``prefix value`` file (a ``.git`` file, ``commondir``)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text[len(prefix):].strip() if text.startswith(prefix) else None


def _looks_like_git_dir(p: Path) -> bool:
    return (p / "HEAD").is_file() and ((p / "objects").is_dir() or (p / "commondir").is_file())


def locate(path: Path) -> GitLayout:
    """The git directory of ``path`` (a work tree, a bare repository, a linked work tree),
    found by reading files: no git command looks at the repository before the shadow."""
    dot = path / ".git"
    if dot.is_dir():
        git_dir = dot
    elif dot.is_file():
        target = _read_pointer(dot, "gitdir:")
        if not target:
            raise GitError(f"{path}: .git is a file but not a 'gitdir:' pointer")
        git_dir = (path / target).resolve()
    elif _looks_like_git_dir(path):
        git_dir = path
    else:
        raise GitError(f"{path}: not a git repository (no .git, and not a bare repository)")
    common = git_dir
    if (git_dir / "commondir").is_file():
        pointer = _read_pointer(git_dir / "commondir", "")
        if pointer:
            common = (git_dir / pointer).resolve()
    if not (git_dir / "HEAD").is_file() or not (common / "objects").is_dir():
        raise GitError(f"{path}: not a git repository ({git_dir} has no HEAD or objects)")
    return GitLayout(git_dir.absolute(), common.absolute())


def _copy_refs(layout: GitLayout, shadow: Path) -> None:
    """HEAD, packed-refs, loose refs and shallow into the shadow: regular files only, never
    through a symbolic link (a legacy symbolic-link HEAD becomes a ``ref:`` line)."""
    head = layout.git_dir / "HEAD"
    if head.is_symlink():
        target = os.readlink(head)
        text = f"ref: {target}\n" if target.startswith("refs/") else ""
    else:
        text = head.read_text(encoding="utf-8", errors="replace")
    (shadow / "HEAD").write_text(text or "ref: refs/heads/none\n", encoding="utf-8")
    for name in ("packed-refs", "shallow"):
        src = layout.common_dir / name
        if src.is_file() and not src.is_symlink():
            shutil.copyfile(src, shadow / name)
    refs = layout.common_dir / "refs"
    for root, dirs, files in os.walk(refs):         # os.walk follows no directory link
        rel = Path(root).relative_to(refs)
        (shadow / "refs" / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            src = Path(root) / f
            if not src.is_symlink() and src.is_file():
                shutil.copyfile(src, shadow / "refs" / rel / f)


def _config_value(config: Path, key: str, shadow: Path) -> str | None:
    """One key of a repository's config file, parsed by ``git config --file`` without its
    includes (a parse: nothing runs)."""
    proc = subprocess.run(["git", "config", "--no-includes", "--file", str(config), "--get", key],
                          capture_output=True, stdin=subprocess.DEVNULL, cwd=shadow,
                          env=git_env({"GIT_DIR": str(shadow)}))
    return proc.stdout.decode(errors="replace").strip().lower() or None


def _shadow_config(layout: GitLayout, shadow: Path) -> str:
    """Our configuration for the shadow; of the repository's, only its object format."""
    own = layout.common_dir / "config"
    fmt = refs = None
    if own.is_file() and not own.is_symlink():
        fmt = _config_value(own, "extensions.objectformat", shadow)
        refs = _config_value(own, "extensions.refstorage", shadow)
    if refs not in (None, "files"):
        raise GitError(f"{layout.git_dir}: ref storage {refs!r} is not supported (only 'files')")
    if fmt not in (None, "sha1", "sha256"):
        raise GitError(f"{layout.git_dir}: unknown object format {fmt!r}")
    lines = ["[core]", f"\trepositoryformatversion = {1 if fmt else 0}", "\tbare = true",
             "\thooksPath = /dev/null", "\tfsmonitor = false", "\tattributesFile = /dev/null",
             "[gc]", "\tauto = 0"]
    if fmt:
        lines += ["[extensions]", f"\tobjectformat = {fmt}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    kind: str  # "blob" or "commit" (submodule)
    oid: str
    size: int  # -1 for submodules and missing blobs
    path: str

    @property
    def is_symlink(self) -> bool:
        return self.mode == "120000"


class GitRepo:
    """A git directory (bare or not) read through the git CLI, by way of a shadow git
    directory of our own (see the module): nothing of the repository configures git."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._batch: subprocess.Popen | None = None
        self._shadow: Path | None = None
        layout = locate(self.path)
        alternates = layout.objects / "info" / "alternates"
        if alternates.is_file() and alternates.read_bytes().strip():
            raise GitError(f"{self.path}: its object store borrows objects from elsewhere "
                           f"(objects/info/alternates), which would read outside the "
                           f"repository: run 'git repack -a -d' in it and remove that file")
        self.layout = layout
        self.git_dir = layout.git_dir
        shadow = Path(tempfile.mkdtemp(prefix="repopeftbench-git-"))
        try:
            (shadow / "objects").mkdir()           # unused: GIT_OBJECT_DIRECTORY wins
            (shadow / "config").write_text(_shadow_config(layout, shadow), encoding="utf-8")
            _copy_refs(layout, shadow)
        except (GitError, OSError) as exc:
            shutil.rmtree(shadow, ignore_errors=True)
            if isinstance(exc, GitError):
                raise
            raise GitError(f"{self.path}: cannot read its refs ({exc})") from None
        self._shadow = shadow
        self._env = git_env({"GIT_DIR": str(shadow), "GIT_OBJECT_DIRECTORY": str(layout.objects)})

    def _cmd(self, args: list[str]) -> list[str]:
        return ["git", *SAFE_OPTIONS, *args]

    def popen_kwargs(self) -> dict:
        """``env`` and ``cwd`` of a git process of this repository (argv from ``_cmd``)."""
        return {"env": self._env, "cwd": str(self._shadow)}

    def _run_raw(self, args: list[str], check: bool = True,
                 stdin: bytes | None = None) -> subprocess.CompletedProcess:
        kwargs = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        proc = subprocess.run(self._cmd(args), capture_output=True, **kwargs,
                              **self.popen_kwargs())
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

    def commit_time(self, sha: str) -> int | None:
        """Committer time, or None when git's value is out of range (see ``valid_timestamp``)."""
        return valid_timestamp(self.run(["log", "-1", "--no-show-signature", "--format=%ct",
                                         sha]).strip())

    def last_commit_before(self, rev: str, timestamp: int) -> str | None:
        out = self.run(["rev-list", "-1", "--first-parent", f"--before={timestamp}", rev]).strip()
        return out or None

    def first_parent_index(self, sha: str) -> int:
        return int(self.run(["rev-list", "--count", "--first-parent", sha]).strip()) - 1

    def root_commit_time(self, rev: str) -> int | None:
        roots = self.run(["rev-list", "--max-parents=0", "--first-parent", rev]).split()
        times = [t for t in (self.commit_time(r) for r in roots) if t is not None]
        return min(times) if times else None

    def root_commits(self, rev: str) -> list[str]:
        """Every root commit reachable from ``rev``, sorted."""
        return sorted(self.run(["rev-list", "--max-parents=0", rev]).split())

    def first_parent_root(self, rev: str) -> str:
        """The root commit of ``rev``'s first-parent line: where the project itself began
        (not a template or another project whose history was merged in later)."""
        return self.run(["rev-list", "--max-parents=0", "--first-parent", rev]).split()[-1]

    def tree_of(self, rev: str) -> str:
        return self.run(["rev-parse", f"{rev}^{{tree}}"]).strip()

    # --- trees and blobs -----------------------------------------------------------
    def ls_tree(self, sha: str) -> list[TreeEntry]:
        out = self._run_raw(["ls-tree", "-r", "-z", "--long", "--full-tree", sha]).stdout
        entries = []
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, _, path = rec.partition(b"\t")
            mode, kind, oid, size = meta.split(None, 3)
            # size: "-" for a submodule, "BAD" for a blob missing from the object store
            # (snapshots that leave large files out); -1 for both, the blob read fails later
            entries.append(TreeEntry(mode.decode(), kind.decode(), oid.decode(),
                                     int(size) if size.strip().isdigit() else -1,
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
            self._batch = subprocess.Popen(self._cmd(["cat-file", "--batch"]), **self.popen_kwargs(),
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
            self._close_batch()
            raise GitError(f"{self.path}: git cat-file --batch ended unexpectedly")
        parts = header.split()
        if len(parts) < 3 or parts[1] == b"missing":
            return None
        size = int(parts[2])
        data = self._batch.stdout.read(size)
        self._batch.stdout.read(1)  # trailing newline
        return data

    def _close_batch(self) -> None:
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

    def close(self) -> None:
        self._close_batch()
        if self._shadow is not None:
            shutil.rmtree(self._shadow, ignore_errors=True)
            self._shadow = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

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
    author_time: int | None     # None when out of range (``valid_timestamp``)
    commit_time: int | None
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
    cmd = repo._cmd(["log", "--no-show-signature", "--no-ext-diff", "--no-textconv", "--no-mailmap",
                     "--first-parent", "--reverse", "--diff-merges=first-parent", "--root",
                     "-M", "--raw", "--no-abbrev", "-z", "--no-color", "--format=%x01%H %P%x00%at %ct %T",
                     rev_range, "--"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, **repo.popen_kwargs())
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
                current = LogCommit(shas[0], shas[1:], valid_timestamp(times[0]),
                                    valid_timestamp(times[1]), times[2], [])
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
    cmd = repo._cmd(["diff-tree", "--stdin", "-p", "--no-color", "--no-renames", "--no-ext-diff",
                     "--no-textconv", "--", *pathspecs])
    text = "".join(f"{a} {b}\n" for a, b in pairs).encode()
    proc = subprocess.run(cmd, input=text, capture_output=True, **repo.popen_kwargs())
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
