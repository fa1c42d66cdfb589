"""A build never loses or garbles what it publishes: duplicates, killed parents, damaged
work parts, failed and interrupted builds, folders that are not benchmarks, timestamps git
accepts but int64 does not."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import miners.build as build_module
from miners.build import BuildConfig, build
from miners.output import OutputDirError, previous_dir, recover
from repopeftbench.errors import UserError

from conftest import commit_files, git, make_repo

TEST = "def test_a():\n    assert compute(1) == 11\n    assert compute(2) == 'twelve'\n"
CONFIG = BuildConfig(tracks=("static", "evolution"))


def repo_with(path: Path, name: str) -> Path:
    repo = make_repo(path, {"pkg/core.py": f"NAME = {name!r}\n", "tests/test_core.py": TEST})
    commit_files(repo, {"tests/test_more.py": "def test_m():\n    assert value() == 'more'\n"},
                 date="2024-02-01T00:00:00Z")
    return repo


def write_list(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"repo_id": r, "url": u}) + "\n" for r, u in rows))
    return path


def files_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_the_same_repository_under_two_ids_is_mined_once(tmp_path):
    a = repo_with(tmp_path / "a", "a")
    subprocess.run(["git", "clone", "-q", "--bare", str(a), str(tmp_path / "a-copy.git")], check=True)
    b = repo_with(tmp_path / "b", "b")
    lst = write_list(tmp_path / "l.jsonl", [("x/a", str(a)), ("x/b", str(b)),
                                            ("x/a-again", str(tmp_path / "a-copy.git")),
                                            ("x/a-remote", "file://" + str(a))])
    summary = build(lst, tmp_path / "out", CONFIG, workers=1, progress=False)
    assert summary.n_ok == 2
    reasons = {f["repo_id"]: f["reason"] for f in summary.failures}
    assert set(reasons) == {"x/a-again", "x/a-remote"}
    assert all(r.startswith("duplicate of x/a (same root commit") for r in reasons.values())
    tasks = [r["repo_id"] for s in ("static", "evolution") for p in (tmp_path / "out" / s).glob("*.parquet")
             for r in pq.read_table(p, columns=["repo_id"]).to_pylist()]
    assert set(tasks) == {"x/a", "x/b"}
    # never mined: no work part for them
    parts = tmp_path / ".out.work" / "parts" / "static"
    assert not [p for p in parts.iterdir() if "again" in p.name or "remote" in p.name]


def test_repositories_that_merged_one_template_history_are_not_duplicates(tmp_path):
    """Projects made from a shared template whose history they merged (jaraco/skeleton:
    jaraco.functools, inflect and jsonpickle all reach its root commit) are distinct: the
    duplicate check compares where each project's own first-parent line began."""
    template = make_repo(tmp_path / "skeleton", {"pyproject.toml": "[project]\n"},
                         message="template root")
    ids = []
    for name in ("one", "two"):
        repo = repo_with(tmp_path / name, name)
        git(repo, "fetch", "-q", str(template), "main:skeleton")
        git(repo, "merge", "-q", "--allow-unrelated-histories", "-m", "merge the skeleton",
            "skeleton")
        git(repo, "branch", "-D", "skeleton")
        ids.append((f"z/{name}", str(repo)))
    summary = build(write_list(tmp_path / "l.jsonl", ids), tmp_path / "out", CONFIG, workers=1,
                    progress=False)
    assert summary.n_ok == 2 and not summary.failures


def test_same_snapshot_tree_is_a_duplicate(tmp_path):
    a = repo_with(tmp_path / "a", "a")
    other = make_repo(tmp_path / "other", {}, message="unrelated root")
    git(other, "fetch", "-q", str(a), "main:imported")
    tree = git(a, "rev-parse", "HEAD^{tree}").strip()
    sha = git(other, "commit-tree", tree, "-m", "same files, new root").strip()
    git(other, "update-ref", "refs/heads/main", sha)
    git(other, "branch", "-D", "imported")
    lst = write_list(tmp_path / "l.jsonl", [("y/a", str(a)), ("y/other", str(other))])
    summary = build(lst, tmp_path / "out", BuildConfig(), workers=1, progress=False)
    assert [f["reason"][:37] for f in summary.failures] == ["duplicate of y/a (same snapshot tree "]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_end_when_the_build_process_is_killed(tmp_path):
    rows = [(f"k/r{i}", "file://" + str(repo_with(tmp_path / "src" / f"r{i}", f"r{i}")))
            for i in range(6)]
    lst = write_list(tmp_path / "l.jsonl", rows)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "repopeftbench", "build", "--repos", str(lst), "--out", str(out),
           "--workers", "2", "--no-progress", "--tracks", "static,evolution"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline:
        workers = [c for c in _children(proc.pid)
                   if b"multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes()]
        if len(workers) >= 2:
            break
        time.sleep(0.02)
    assert len(workers) >= 2, "the build never started its workers"
    os.kill(proc.pid, signal.SIGKILL)             # the parent alone, as the OOM killer does
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)]
    # and a rerun finishes with what a clean build gives
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clean = tmp_path / "clean"
    build(lst, clean, CONFIG, workers=1, progress=False)
    assert files_of(out) == files_of(clean)


def test_a_damaged_work_part_is_mined_again_with_a_notice(tmp_path, capfd):
    a = repo_with(tmp_path / "a", "a")
    lst = write_list(tmp_path / "l.jsonl", [("d/a", str(a))])
    out = tmp_path / "out"
    build(lst, out, CONFIG, workers=1, progress=False)
    before = files_of(out)
    parts = tmp_path / ".out.work" / "parts"
    static_part = next((parts / "static").glob("*.parquet"))
    static_part.write_bytes(static_part.read_bytes()[:50])          # truncated
    commits_part = next((parts / "evolution").glob("*.commits.parquet"))
    data = bytearray(commits_part.read_bytes())
    data[len(data) // 2] ^= 0xFF                                    # one byte garbled
    commits_part.write_bytes(bytes(data))
    capfd.readouterr()
    build(lst, out, CONFIG, workers=1, progress=False)
    err = capfd.readouterr().err
    assert f"notice: {static_part}: cached part is damaged" in err
    assert f"notice: {commits_part}: cached part is damaged" in err
    assert files_of(out) == before
    stray = parts / "static" / ".x.parquet.12345.tmp"     # left by a killed process
    stray.write_bytes(b"half")
    build(lst, out, CONFIG, workers=1, progress=False)
    assert not list(parts.rglob("*.tmp"))


def test_a_build_that_gives_nothing_leaves_the_old_benchmark(tmp_path):
    a = repo_with(tmp_path / "a", "a")
    out = tmp_path / "out"
    build(write_list(tmp_path / "l.jsonl", [("o/a", str(a))]), out, CONFIG, workers=1,
          progress=False)
    before = files_of(out)
    wrong = write_list(tmp_path / "typo.jsonl", [("o/a", str(tmp_path / "no-such-dir"))])
    proc = subprocess.run([sys.executable, "-m", "repopeftbench", "build", "--repos", str(wrong),
                           "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "left as it was" in proc.stderr and "left as it was" in proc.stdout
    assert files_of(out) == before
    assert (tmp_path / ".out.work" / "failures.jsonl").read_text().count("no-such-dir") == 1
    assert not list(tmp_path.glob(".out.staging-*"))


def test_an_out_folder_that_is_not_a_benchmark_is_refused(tmp_path):
    a = repo_with(tmp_path / "a", "a")
    lst = write_list(tmp_path / "l.jsonl", [("n/a", str(a))])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes\n")
    (mine / "manifest.json").write_text("{}\n")
    with pytest.raises(OutputDirError, match="not a benchmark"):
        build(lst, mine, CONFIG, workers=1, progress=False)
    assert (mine / "README.md").read_text() == "my notes\n"
    proc = subprocess.run([sys.executable, "-m", "repopeftbench", "build", "--repos", str(lst),
                           "--out", str(mine), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "--overwrite" in proc.stderr
    # a benchmark with a file of the user's inside is refused too
    out = tmp_path / "out"
    build(lst, out, CONFIG, workers=1, progress=False)
    (out / "notes.txt").write_text("keep me\n")
    with pytest.raises(OutputDirError, match="notes.txt"):
        build(lst, out, CONFIG, workers=1, progress=False)
    # with --overwrite, replaced whole
    build(lst, mine, CONFIG, workers=1, progress=False, overwrite=True)
    assert json.loads((mine / "manifest.json").read_text())["tool"] == "repopeftbench"
    assert not (mine / "notes.txt").exists()


def test_a_build_interrupted_during_assembly_changes_nothing(tmp_path, monkeypatch):
    a, b = repo_with(tmp_path / "a", "a"), repo_with(tmp_path / "b", "b")
    out = tmp_path / "out"
    build(write_list(tmp_path / "one.jsonl", [("i/a", str(a))]), out, CONFIG, workers=1,
          progress=False)
    before = files_of(out)
    real = build_module.assemble

    def dying(*args, **kwargs):
        real(*args, **kwargs)                  # every file written to the staging folder ...
        raise KeyboardInterrupt                # ... and then the build is stopped
    monkeypatch.setattr(build_module, "assemble", dying)
    with pytest.raises(KeyboardInterrupt):
        build(write_list(tmp_path / "two.jsonl", [("i/a", str(a)), ("i/b", str(b))]), out,
              CONFIG, workers=1, progress=False)
    assert files_of(out) == before
    assert not list(tmp_path.glob(".out.*staging*"))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_swap_cut_between_its_two_renames_is_undone(tmp_path):
    out = tmp_path / "bench"
    previous_dir(out).mkdir()
    (previous_dir(out) / "manifest.json").write_text("{}")
    recover(out)
    assert (out / "manifest.json").exists() and not previous_dir(out).exists()


def test_a_second_build_on_the_same_work_dir_is_refused(tmp_path):
    from miners.build import work_lock
    with work_lock(tmp_path / "w"):
        with pytest.raises(UserError, match="another build"):
            with work_lock(tmp_path / "w"):
                pass


def _rewrite_times(repo: Path, stamp: str) -> None:
    """HEAD again with author and committer times set to ``stamp`` (git accepts any digits)."""
    body = git(repo, "cat-file", "commit", "HEAD")
    lines = []
    for line in body.split("\n"):
        if line.startswith(("author ", "committer ")):
            who, _, _ = line.rpartition(" ")[0].rpartition(" ")
            line = f"{who} {stamp} +0000"
        lines.append(line)
    sha = subprocess.run(["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
                         input="\n".join(lines).encode(), capture_output=True,
                         check=True).stdout.decode().strip()
    git(repo, "update-ref", "refs/heads/main", sha)


def test_a_commit_time_past_int64_is_recorded_not_a_crash(tmp_path):
    a = repo_with(tmp_path / "a", "a")
    _rewrite_times(a, "99999999999999999999")
    summary = build(write_list(tmp_path / "l.jsonl", [("t/a", str(a))]), tmp_path / "out", CONFIG,
                    workers=1, progress=False)
    assert summary.n_ok == 1
    assert summary.filter_counts["timestamp_out_of_range"] == 1
    commits = [r for p in (tmp_path / "out" / "commits").glob("*.parquet")
               for r in pq.read_table(p).to_pylist()]
    assert sorted((c["commit_index"], c["commit_timestamp"]) for c in commits) == [
        (0, 1704067200), (1, None)]
    repos = pq.read_table(tmp_path / "out" / "repos.parquet").to_pylist()
    assert repos[0]["commit_timestamp"] is None


def test_a_csv_field_over_the_csv_limit_is_a_bad_row(tmp_path):
    from miners.repolist import read_repo_list
    lst = tmp_path / "l.csv"
    lst.write_text("repo_id,url\nok/a,/x\nbig/b," + "y" * 200_000 + "\n")
    good, bad = read_repo_list(lst)
    assert [s.repo_id for s in good] == ["ok/a"]
    assert len(bad) == 1 and "field" in bad[0].reason and bad[0].source.endswith(":3")
