"""Repository acquisition: clone remote URLs into a cache, read local ones in place."""
from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path

from .repolist import RepoSpec

from .git import SAFE_OPTIONS, GitError, GitRepo, git_env


def safe_name(repo_id: str) -> str:
    """A file-system-safe, collision-free name for a repo id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", repo_id).strip("._")[:80] or "repo"
    return f"{slug}-{hashlib.sha1(repo_id.encode()).hexdigest()[:8]}"


def clone_into_cache(url: str, dest: Path) -> None:
    """Bare-clone ``url`` to ``dest`` with GitPython; the clone appears atomically."""
    import git  # GitPython; imported lazily so read-only use does not need it

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        options = [f"--config={SAFE_OPTIONS[i + 1]}" for i in range(0, len(SAFE_OPTIONS), 2)
                   if SAFE_OPTIONS[i + 1].startswith("core.")]
        repo = git.Repo.clone_from(url, tmp / "repo.git", bare=True, env=git_env(),
                                   multi_options=options, allow_unsafe_options=True)
        repo.close()
        (tmp / "repo.git").rename(dest)
    except git.GitCommandError as exc:
        lines = [ln.strip(" '\"") for ln in str(exc.stderr or "").splitlines()]
        lines = [ln.removeprefix("stderr: ").strip(" '") for ln in lines if ln.strip(" '\"")]
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        raise GitError(f"cannot clone {url}: {(fatal or lines or [str(exc)])[-1]}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def acquire(spec: RepoSpec, cache_dir: Path, refresh: bool = False) -> GitRepo:
    """Return a read-only handle on the repository of ``spec``.

    Local paths (work trees or bare git directories) are read in place and never
    written to. Remote URLs are cloned once into ``cache_dir``; ``refresh`` fetches
    new commits into an existing clone.
    """
    if not spec.is_remote:
        path = Path(spec.location)
        if not path.exists():
            raise GitError(f"{spec.location}: path does not exist")
        return GitRepo(path)
    dest = cache_dir / f"{safe_name(spec.repo_id)}.git"
    if not dest.exists():
        clone_into_cache(spec.location, dest)
    elif refresh:
        repo = GitRepo(dest)
        repo.run(["fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*"])
        return repo
    return GitRepo(dest)
