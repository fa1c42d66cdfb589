"""Shared test helpers: tiny git repositories made on the fly, with fixed dates."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent-home-for-tests"}


def git(repo: Path, *args: str, date: str = "2024-01-01T00:00:00Z") -> str:
    env = {**os.environ, **_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    out = subprocess.run(["git", "-c", "init.defaultBranch=main", "-C", str(repo), *args],
                         capture_output=True, env=env, check=True)
    return out.stdout.decode()


def make_repo(path: Path, files: dict[str, bytes | str], date: str = "2024-01-01T00:00:00Z",
              message: str = "initial") -> Path:
    """A git repository with one commit holding ``files`` (str values are UTF-8 encoded)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    commit_files(path, files, date=date, message=message)
    return path


def commit_files(path: Path, files: dict[str, bytes | str], date: str = "2024-01-01T00:00:00Z",
                 message: str = "change") -> str:
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message, date=date)
    return git(path, "rev-parse", "HEAD").strip()


@pytest.fixture(autouse=True)
def _offline_hf(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
