"""A hostile repository: every way its files could make git run a program or read
elsewhere is planted with a marker; mining it (both tracks, the context, the snapshot
read) must never leave a marker, and must still mine it."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from miners.build import BuildConfig, build
from miners.git import GitError, GitRepo

from conftest import commit_files, git, make_repo

VECTORS = ["gpg", "gpg-ssh", "gpg-x509", "pager", "pager-log", "extdiff", "textconv",
           "diffcmd", "filter-clean", "filter-smudge", "filter-process", "fsmonitor",
           "sshcommand", "askpass", "alternate-refs", "uploadpack", "included", "included-if",
           "attributes-file", "editor", "credential"]
HOOKS = ["post-checkout", "pre-commit", "post-commit", "reference-transaction",
         "post-index-change", "pre-auto-gc", "post-rewrite", "fsmonitor-watchman"]

TEST_V1 = "def test_a():\n    assert compute(1) == 11\n"
TEST_V2 = "def test_a():\n    assert compute(1) == 11\n    assert compute(2) == 'twelve'\n"


def _script(path: Path, marker: Path) -> Path:
    path.write_text(f"#!/bin/sh\ntouch '{marker}'\ncat >/dev/null 2>&1\nexit 0\n")
    path.chmod(0o755)
    return path


def _sign(repo: Path) -> str:
    """Rewrite HEAD as the same commit with a ``gpgsig`` header (what makes git call
    ``gpg.program`` when ``log.showSignature`` is set)."""
    body = git(repo, "cat-file", "commit", "HEAD")
    head, _, message = body.partition("\n\n")
    sig = ("gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEEplaceholdersignature\n"
           " -----END PGP SIGNATURE-----")
    signed = f"{head}\n{sig}\n\n{message}"
    sha = subprocess.run(["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
                         input=signed.encode(), capture_output=True, check=True).stdout.decode().strip()
    git(repo, "update-ref", "refs/heads/main", sha)
    return sha


def plant(repo: Path, markers: Path, elsewhere: Path) -> None:
    """Scripts in the work tree, configuration pointing at them, hooks, includes."""
    markers.mkdir(parents=True, exist_ok=True)
    elsewhere.mkdir(parents=True, exist_ok=True)
    s = {v: _script(repo / f"evil-{v}.sh", markers / v) for v in VECTORS}
    (elsewhere / "included.cfg").write_text(
        f"[marker]\n\tincluded = yes\n[diff]\n\texternal = {s['included']}\n"
        f"[core]\n\tpager = {s['included']}\n")
    (elsewhere / "included-if.cfg").write_text(
        f"[marker]\n\tincludedif = yes\n[log]\n\tshowSignature = true\n"
        f"[gpg]\n\tprogram = {s['included-if']}\n")
    (elsewhere / "attributes").write_text("* diff=evil filter=evil\n")
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for h in HOOKS:
        _script(hooks / h, markers / f"hook-{h}")
    other_hooks = elsewhere / "hooks"
    other_hooks.mkdir(exist_ok=True)
    for h in HOOKS:
        _script(other_hooks / h, markers / f"hookspath-{h}")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("* diff=evil filter=evil\n")
    with open(repo / ".git" / "config", "a") as fh:
        fh.write(f"""[marker]
\tlocal = yes
[log]
\tshowSignature = true
[gpg]
\tprogram = ./evil-gpg.sh
[gpg "ssh"]
\tprogram = {s['gpg-ssh']}
[gpg "x509"]
\tprogram = {s['gpg-x509']}
[core]
\tpager = {s['pager']}
\tfsmonitor = {s['fsmonitor']}
\tsshCommand = {s['sshcommand']}
\taskPass = {s['askpass']}
\teditor = {s['editor']}
\thooksPath = {other_hooks}
\tattributesFile = {elsewhere / 'attributes'}
\talternateRefsCommand = {s['alternate-refs']}
[pager]
\tlog = {s['pager-log']}
\tshow = {s['pager-log']}
\tdiff-tree = {s['pager-log']}
[diff]
\texternal = {s['extdiff']}
[diff "evil"]
\ttextconv = {s['textconv']}
\tcommand = {s['diffcmd']}
[filter "evil"]
\tclean = {s['filter-clean']}
\tsmudge = {s['filter-smudge']}
\tprocess = {s['filter-process']}
\trequired = true
[credential]
\thelper = {s['credential']}
[uploadpack]
\tpackObjectsHook = {s['uploadpack']}
[remote "origin"]
\turl = ssh://example.invalid/x.git
\tuploadpack = {s['uploadpack']}
[include]
\tpath = {elsewhere / 'included.cfg'}
[includeIf "gitdir:/"]
\tpath = {elsewhere / 'included-if.cfg'}
""")


@pytest.fixture()
def hostile(tmp_path) -> dict[str, Path]:
    repo = make_repo(tmp_path / "hostile", {"pkg/core.py": "def compute(x):\n    return x + 10\n",
                                            "tests/test_core.py": TEST_V1,
                                            ".gitattributes": "* diff=evil filter=evil\n"})
    commit_files(repo, {"tests/test_core.py": TEST_V2, "pkg/more.py": "Y = 2\n"},
                 date="2024-02-01T00:00:00Z")
    _sign(repo)
    markers, elsewhere = tmp_path / "markers", tmp_path / "elsewhere"
    plant(repo, markers, elsewhere)
    return {"repo": repo, "markers": markers, "tmp": tmp_path}


def _build(tmp: Path, repo: Path, name: str = "out") -> dict:
    lst = tmp / f"{name}.jsonl"
    lst.write_text(json.dumps({"repo_id": "evil/repo", "url": str(repo)}) + "\n")
    summary = build(lst, tmp / name, BuildConfig(tracks=("static", "evolution")), workers=1,
                    progress=False)
    return {"n_ok": summary.n_ok, "failures": summary.failures,
            "sizes": summary.split_sizes}


def test_no_configuration_of_a_mined_repository_runs_anything(hostile):
    repo, markers = hostile["repo"], hostile["markers"]
    # the planted configuration is live: plain git in the repository runs the scripts
    subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%H"], capture_output=True,
                   env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"})
    assert list(markers.iterdir()), "the hostile fixture does not trigger git as planted"
    shutil.rmtree(markers)
    markers.mkdir()

    result = _build(hostile["tmp"], repo)
    assert result["n_ok"] == 1, result["failures"]
    assert sum(result["sizes"]["static"].values()) > 0
    assert sum(result["sizes"]["evolution"].values()) > 0
    assert sorted(p.name for p in markers.iterdir()) == []
    with GitRepo(repo) as g:          # neither the repository's keys nor its includes are seen
        for key in ("marker.local", "marker.included", "marker.includedif", "diff.external"):
            assert g._run_raw(["config", "--get", key], check=False).stdout == b""
        g.run(["log", "-p", "--stat", "HEAD"])          # a pager, textconv, ext-diff path
        g.run(["show", "HEAD"])
    assert sorted(p.name for p in markers.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a repository to another user")
def test_a_repository_owned_by_another_user_is_mined_without_running_it(hostile):
    repo, markers = hostile["repo"], hostile["markers"]
    for root, dirs, files in os.walk(repo):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), 65534, 65534)
    os.lchown(repo, 65534, 65534)
    # git itself refuses it (its ownership check) ...
    plain = subprocess.run(["git", "-C", str(repo), "log", "-1"], capture_output=True,
                           env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"})
    assert plain.returncode != 0 and b"dubious ownership" in plain.stderr
    # ... we read it without its configuration, so it is safe to: mined, nothing ran
    result = _build(hostile["tmp"], repo)
    assert result["n_ok"] == 1, result["failures"]
    assert sorted(p.name for p in markers.iterdir()) == []


def test_object_alternates_are_refused_with_the_reason(tmp_path):
    src = make_repo(tmp_path / "src", {"tests/test_a.py": TEST_V1})
    subprocess.run(["git", "clone", "-q", "--shared", str(src), str(tmp_path / "borrower")],
                   check=True, capture_output=True)
    with pytest.raises(GitError, match="alternates"):
        GitRepo(tmp_path / "borrower")
    result = _build(tmp_path, tmp_path / "borrower")
    assert result["n_ok"] == 0
    assert "alternates" in result["failures"][0]["reason"]


def test_linked_work_tree_and_symlinked_refs(tmp_path):
    repo = make_repo(tmp_path / "main", {"tests/test_a.py": TEST_V1})
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "side")
    secret = tmp_path / "secret-ref"
    secret.write_text("0123456789012345678901234567890123456789\n")
    os.symlink(secret, repo / ".git" / "refs" / "heads" / "leak")
    with GitRepo(tmp_path / "wt") as g:
        assert g.resolve("HEAD") == git(repo, "rev-parse", "HEAD").strip()
        assert g.resolve("refs/heads/leak") is None   # a ref link pointing outside is not read
    assert stat.S_ISLNK(os.lstat(repo / ".git" / "refs" / "heads" / "leak").st_mode)
