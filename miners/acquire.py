"""Repository acquisition: clone remote URLs into a cache, read local ones in place.

A local directory that is not a git repository (an installed package, an unpacked
source archive) is read as a snapshot: its .py/.md/.rst files become the one commit of a
bare repository in the cache, with a fixed author and the newest file's modification
time as the date, so the same directory always gives the same commit. The repos table
records its ``source`` as ``snapshot``.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import shutil
import tempfile
from pathlib import Path

from .repolist import RepoSpec

from .git import SAFE_OPTIONS, GitError, GitRepo, git_env


def safe_name(repo_id: str) -> str:
    """A file-system-safe, collision-free name for a repo id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", repo_id).strip("._")[:80] or "repo"
    return f"{slug}-{hashlib.sha1(repo_id.encode()).hexdigest()[:8]}"


# A clone or fetch talks to a server with the user's own git configuration (proxies,
# credentials), minus anything that would run here: no hooks, no fsmonitor.
CLONE_OPTIONS = ["--config=core.hooksPath=/dev/null", "--config=core.fsmonitor=false"]


def clone_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_INDEX_FILE"):
        env.pop(name, None)
    return env


def fetch_into_cache(url: str, dest: Path) -> None:
    """New commits of ``url`` into our own bare clone ``dest`` (its configuration is ours)."""
    proc = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "-C", str(dest), "fetch",
                           "--quiet", url, "+refs/heads/*:refs/heads/*"], capture_output=True,
                          stdin=subprocess.DEVNULL, env=clone_env())
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"cannot fetch {url}: {err[-1] if err else proc.returncode}")


def clone_into_cache(url: str, dest: Path) -> None:
    """Bare-clone ``url`` to ``dest`` with GitPython; the clone appears atomically."""
    import git  # GitPython; imported lazily so read-only use does not need it

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        repo = git.Repo.clone_from(url, tmp / "repo.git", bare=True, env=clone_env(),
                                   multi_options=CLONE_OPTIONS, allow_unsafe_options=True)
        repo.close()
        (tmp / "repo.git").rename(dest)
    except git.GitCommandError as exc:
        lines = [ln.strip(" '\"") for ln in str(exc.stderr or "").splitlines()]
        lines = [ln.removeprefix("stderr: ").strip(" '") for ln in lines if ln.strip(" '\"")]
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        raise GitError(f"cannot clone {url}: {(fatal or lines or [str(exc)])[-1]}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SNAPSHOT_SUFFIXES = (".py", ".md", ".rst")


def snapshot_files(path: Path) -> list[str]:
    """Relative paths of the .py/.md/.rst files under ``path`` (symlinked directories and
    caches not followed), sorted."""
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".git")
                   and not os.path.islink(os.path.join(root, d))]
        rel = os.path.relpath(root, path)
        out += [f if rel == "." else f"{rel}/{f}" for f in files if f.endswith(SNAPSHOT_SUFFIXES)]
    return sorted(out)


def is_git_directory(path: Path) -> bool:
    """A work tree (``.git`` inside) or a bare repository; not merely a directory that
    sits somewhere below another repository's work tree."""
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def source_kind(spec: RepoSpec) -> str:
    """``remote`` (cloned), ``local`` (a git repository read in place) or ``snapshot``."""
    if spec.is_remote:
        return "remote"
    return "local" if is_git_directory(Path(spec.location)) else "snapshot"


def snapshot_directory(path: Path, dest: Path) -> GitRepo:
    """A one-commit bare repository of ``path``'s .py/.md/.rst files at ``dest``, rebuilt
    (atomically) on every call so it follows the directory."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        git_dir = tmp / "repo.git"
        env = {**git_env(), "GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(path),
               "GIT_INDEX_FILE": str(tmp / "index")}

        def run(*args: str, bare: bool = False, stdin: bytes | None = None) -> str:
            proc = subprocess.run(["git", *SAFE_OPTIONS, *args], capture_output=True,
                                  env=git_env() if bare else env, input=stdin)
            if proc.returncode != 0:
                raise GitError(f"{path}: cannot read as a snapshot: "
                               f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
            return proc.stdout.decode()

        run("init", "--quiet", "--bare", str(git_dir), bare=True)
        files = snapshot_files(path)
        if not files:
            raise GitError(f"{path}: not a git repository, and no .py/.md/.rst file to read "
                           f"as a snapshot")
        env["GIT_LITERAL_PATHSPECS"] = "1"
        run("add", "--force", "--pathspec-from-file=-", "--pathspec-file-nul",
            stdin="\0".join(files).encode("utf-8", "surrogateescape"))
        newest = max(int(os.lstat(path / f).st_mtime) for f in files)
        tree = run("write-tree").strip()
        stamp = f"@{newest} +0000"
        env.update(GIT_AUTHOR_NAME="snapshot", GIT_AUTHOR_EMAIL="snapshot@repopeftbench",
                   GIT_COMMITTER_NAME="snapshot", GIT_COMMITTER_EMAIL="snapshot@repopeftbench",
                   GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        commit = run("commit-tree", tree, "-m", f"snapshot of {path.name}").strip()
        run("update-ref", "HEAD", commit)
        if dest.exists():
            shutil.rmtree(dest)
        git_dir.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return GitRepo(dest)


def acquire(spec: RepoSpec, cache_dir: Path, refresh: bool = False,
            rebuild_snapshot: bool = True) -> GitRepo:
    """Return a read-only handle on the repository of ``spec``.

    Local paths (work trees or bare git directories) are read in place and never
    written to; other local directories are read as a snapshot (see the module). Remote URLs are cloned once into ``cache_dir``; ``refresh`` fetches
    new commits into an existing clone. ``rebuild_snapshot=False`` reuses a snapshot
    repository made earlier in the same build.
    """
    if not spec.is_remote:
        path = Path(spec.location)
        if not path.exists():
            raise GitError(f"{spec.location}: path does not exist")
        if path.is_dir() and not is_git_directory(path):
            dest = cache_dir / f"{safe_name(spec.repo_id)}.snapshot.git"
            if not rebuild_snapshot and dest.is_dir():
                return GitRepo(dest)       # made moments ago by ``identify`` in this build
            return snapshot_directory(path, dest)
        return GitRepo(path)
    dest = cache_dir / f"{safe_name(spec.repo_id)}.git"
    if not dest.exists():
        clone_into_cache(spec.location, dest)
    elif refresh:
        fetch_into_cache(spec.location, dest)
    return GitRepo(dest)
