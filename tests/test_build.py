"""End to end: repositories made by the test -> build -> files, failures, resume, datasets."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from miners.static_miner import StaticMinerConfig
from miners.build import BuildConfig, build
from repopeftbench.schema import FILE_SPLITS

from conftest import commit_files, git, make_repo

GOOD_TEST = '''import unittest
import pytest


@pytest.fixture
def data():
    return {"a": 1}


class TestUnit(unittest.TestCase):
    def setUp(self):
        self.x = 41

    def test_equal(self):
        self.assertEqual(self.x + 1, compute(41))
        self.assertTrue(self.x > 40)
        with self.assertRaises(ZeroDivisionError):
            1 / 0

    class TestNested:
        async def test_async(self):
            assert await fetch() == "payload"


@pytest.mark.parametrize("n", [1, 2])
def test_param(n, data):
    assert n * 10 in {10, 20}
    assert data["a"] == pytest.approx(1.0)
    with pytest.raises(KeyError, match="zz"):
        data["zz"]
'''

PROD = "def compute(x):\n    return x + 1\n"


def tree_fingerprint(path: Path) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(path))] = "link:" + os.readlink(p)
        elif p.is_file():
            st = p.stat()
            out[str(p.relative_to(path))] = f"{st.st_mtime_ns}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
    return out


def output_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def good_like(path: Path, name: str) -> Path:
    """A repository with the tests of "good" but its own history (another README)."""
    repo = make_repo(path, {"pkg/core.py": PROD, "tests/test_core.py": GOOD_TEST,
                            "README.md": f"# {name}\n"})
    commit_files(repo, {"tests/test_more.py": "def test_more():\n    assert compute(2) == 33\n"},
                 date="2024-02-01T00:00:00Z")
    return repo


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("repos")
    r: dict[str, Path] = {}
    r["good"] = make_repo(root / "good", {"pkg/core.py": PROD, "tests/test_core.py": GOOD_TEST,
                                          "README.md": "# good\n"})
    commit_files(r["good"], {"tests/test_more.py": "def test_more():\n    assert compute(2) == 33\n"},
                 date="2024-02-01T00:00:00Z")
    bad = make_repo(root / "badfiles", {
        "tests/test_good.py": "def test_ok():\n    assert value() == 'fine'\n",
        "tests/test_latin1.py": "def test_l():\n    assert s == 'caf\xe9'\n".encode("latin-1"),
        "tests/test_py2.py": "def test_p():\n    print 'hello'\n    assert x == 10\n",
        "tests/test_syntax.py": "def test_s(:\n    assert x == 10\n",
        "tests/test_binary.py": b"\x00\x01\x02binary\x00",
        "tests/test_huge.py": "def test_h():\n" + "    assert v == 12345\n" * 300,
        "tests/helpers/util.py": "def helper():\n    return 1\n",
        "tests/test_gone.py": "def test_g():\n    assert gone() == 'lost'\n",
    })
    os.symlink("test_good.py", bad / "tests/test_link.py")
    os.symlink("test_loop.py", bad / "tests/test_loop.py")
    os.symlink("/etc/passwd", bad / "tests/test_outside.py")
    commit_files(bad, {}, message="symlinks", date="2024-01-02T00:00:00Z")
    # a blob missing from the object store, as in snapshots that leave large files out
    # (git ls-tree --long gives its size as "BAD")
    oid = git(bad, "rev-parse", "HEAD:tests/test_gone.py").strip()
    (bad / ".git/objects" / oid[:2] / oid[2:]).unlink()
    r["badfiles"] = bad
    r["notests"] = make_repo(root / "notests", {"pkg/a.py": "X = 1\n"})
    r["empty"] = root / "empty"
    r["empty"].mkdir()
    git(r["empty"], "init", "-q")
    # the same tests in other repositories (a repository listed twice is mined once)
    for name in ("twin", "triplet"):
        r[name] = good_like(root / name, name)
    r["bare"] = root / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(r["twin"]), str(r["bare"])], check=True)
    corrupt = root / "corrupt"
    shutil.copytree(r["good"], corrupt, symlinks=True)
    for obj in (corrupt / ".git/objects").glob("??"):
        shutil.rmtree(obj)
    r["corrupt"] = corrupt
    return r


def write_list(path: Path, repos: dict[str, Path], extra: str = "") -> Path:
    lines = [
        {"repo_id": "t/good", "url": str(repos["good"]), "license": "MIT", "stars": 500},
        {"repo_id": "t/badfiles", "url": str(repos["badfiles"])},
        {"repo_id": "t/notests", "url": str(repos["notests"])},
        {"repo_id": "t/empty", "url": str(repos["empty"])},
        {"repo_id": "t/bare", "url": str(repos["bare"]), "split": "ood"},
        {"repo_id": "t/remote", "url": "file://" + str(repos["triplet"])},
        {"repo_id": "t/badurl", "url": "file:///nonexistent/repo.git"},
        {"repo_id": "t/corrupt", "url": str(repos["corrupt"])},
        {"repo_id": "t/missingdir", "url": "/nonexistent/dir"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + extra)
    return path


CONFIG = BuildConfig(static=StaticMinerConfig(max_file_bytes=4000))


def test_build_outputs_failures_and_skips(tmp_path, repos):
    before = {k: tree_fingerprint(v) for k, v in repos.items()}
    repo_list = write_list(tmp_path / "repos.jsonl", repos, extra='{"url": "/x"}\n')
    out = tmp_path / "out"
    summary = build(repo_list, out, CONFIG, workers=1, progress=False)
    assert {k: tree_fingerprint(v) for k, v in repos.items()} == before  # nothing written into repos

    failures = {f["repo_id"] or f["source"]: f["reason"]
                for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    assert failures["t/notests"].startswith("no test files")
    assert "empty repository (no commits)" in failures["t/empty"]
    assert failures["t/badurl"].startswith("cannot clone file:///nonexistent/repo.git")
    assert "/nonexistent/dir: path does not exist" in failures["t/missingdir"]
    assert "t/corrupt" in failures and failures["t/corrupt"]
    assert failures[f"{repo_list}:10"] == "missing required field 'repo_id'"
    assert summary.n_ok == 4 and summary.n_failed == 6

    report = json.loads((out / "build_report.json").read_text())
    bad_report = next(r for r in report["repos"] if r["repo_id"] == "t/badfiles")
    skips = dict(bad_report["tracks"]["static"]["file_skips"])
    assert skips["tests/test_latin1.py"].startswith("file_non_utf8")
    assert skips["tests/test_py2.py"] == "file_syntax_error: Python 2 syntax (line 2)"
    assert skips["tests/test_syntax.py"].startswith("file_syntax_error")
    assert skips["tests/test_binary.py"].startswith("file_binary")
    assert skips["tests/test_huge.py"].startswith("file_too_large")
    assert skips["tests/test_gone.py"].startswith("file_missing_object")
    for link in ("test_link.py", "test_loop.py", "test_outside.py"):
        assert skips[f"tests/{link}"].startswith("file_symlink")

    sizes = summary.split_sizes["static"]
    static = {s: pq.read_table(out / "static" / f"{s}.parquet").to_pylist() if sizes[s]
              else [] for s in FILE_SPLITS}
    assert all((out / "static" / f"{s}.parquet").exists() == (n > 0) for s, n in sizes.items())
    rows = [r for rs in static.values() for r in rs]
    by_repo = {}
    for r in rows:
        by_repo.setdefault(r["repo_id"], []).append(r)
    assert [r["target"] for r in by_repo["t/badfiles"]] == ["'fine'"]
    good_targets = sorted(r["target"] for r in by_repo["t/good"])
    assert good_targets == sorted(['compute(41))', 'self.x > 40)', 'ZeroDivisionError)',
                                   '"payload"', '{10, 20}', '1.0)', 'KeyError, match="zz")', '33'])
    assert sorted(r["target"] for r in by_repo["t/remote"]) == good_targets
    assert all(r["cross_repo_split"] == "ood" for r in by_repo["t/bare"])
    assert static["test_ood"] and all(r["repo_id"] == "t/bare" for r in static["test_ood"])
    nested = next(r for r in rows if r["target"] == '"payload"')
    assert nested["test_class"] == "TestUnit.TestNested" and nested["test_function"] == "test_async"
    head = git(repos["good"], "rev-parse", "HEAD").strip()
    assert {r["commit_sha"] for r in by_repo["t/good"]} == {head}
    assert {r["commit_idx"] for r in by_repo["t/good"]} == {1}

    manifest = json.loads((out / "manifest.json").read_text())
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert set(manifest["files"]) >= {"README.md", "repos.parquet", "static/train.parquet"}
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: other") and "config_name: static" in card
    assert "| t/good |" in card and "file_non_utf8" in card
    repos_table = pq.read_table(out / "repos.parquet").to_pylist()
    assert {r["repo_id"]: r["status"] for r in repos_table}["t/empty"] == "failed"


def test_builds_are_byte_identical_across_runs_and_workers(tmp_path, repos):
    repo_list = write_list(tmp_path / "repos.jsonl", repos)
    build(repo_list, tmp_path / "a", CONFIG, workers=1, progress=False)
    build(repo_list, tmp_path / "b", CONFIG, workers=2, progress=False)
    a, b = output_files(tmp_path / "a"), output_files(tmp_path / "b")
    assert a.keys() == b.keys() and a == b
    build(repo_list, tmp_path / "a", CONFIG, workers=1, progress=False)  # rerun over a finished build
    assert output_files(tmp_path / "a") == a


def test_resume_after_sigkill_matches_clean_build(tmp_path, repos):
    entries = []
    for i in range(8):
        copy = good_like(tmp_path / "src" / f"good{i}", f"good{i}")
        entries.append({"repo_id": f"k/good{i}", "url": "file://" + str(copy)})
    repo_list = tmp_path / "repos.jsonl"
    repo_list.write_text("".join(json.dumps(e) + "\n" for e in entries))
    clean = tmp_path / "clean"
    build(repo_list, clean, BuildConfig(tracks=("static", "evolution")), workers=1, progress=False)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "repopeftbench", "build", "--repos", str(repo_list),
           "--out", str(out), "--workers", "1", "--no-progress", "--tracks", "static,evolution"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    def finished() -> int:  # per-repository part results (the evolution state is not one);
        # only parts/ is walked: repos/ holds clones that git is creating meanwhile
        return sum(1 for p in (out.parent / ".killed.work" / "parts").rglob("*.json")
                   if not p.name.endswith(".state.json"))

    while time.time() < deadline and finished() < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = finished()
    assert 2 <= done_at_kill < 8 * 3 and not (out / "manifest.json").exists()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert output_files(out) == output_files(clean)


def test_datasets_load_dataset_reads_the_build(tmp_path, repos):
    datasets = pytest.importorskip("datasets")
    repo_list = write_list(tmp_path / "repos.jsonl", repos)
    out = tmp_path / "out"
    summary = build(repo_list, out, CONFIG, workers=1, progress=False)
    ds = datasets.load_dataset(str(out), "static", cache_dir=str(tmp_path / "hf"))
    assert {k: len(v) for k, v in ds.items()} == {k: n for k, n in summary.split_sizes["static"].items() if n}
    assert "prefix" in ds["test_ood"].column_names
    repos_ds = datasets.load_dataset(str(out), "repos", cache_dir=str(tmp_path / "hf"))
    assert len(repos_ds["repos"]) == 9


def test_cutoff_truncates_history_and_marks_late_repos_ood(tmp_path, repos):
    repo_list = tmp_path / "repos.jsonl"
    repo_list.write_text(json.dumps({"repo_id": "c/good", "url": str(repos["good"])}) + "\n" +
                         json.dumps({"repo_id": "c/late", "url": str(repos["twin"]),
                                     "created_at": "2025-06-01"}) + "\n")
    out = tmp_path / "out"
    build(repo_list, out, BuildConfig(cutoff="2024-01-15"), workers=1, progress=False)
    repos_table = {r["repo_id"]: r for r in pq.read_table(out / "repos.parquet").to_pylist()}
    first = git(repos["good"], "rev-list", "--max-parents=0", "HEAD").strip()
    assert repos_table["c/good"]["commit_sha"] == first  # the later commit is past the cutoff
    assert repos_table["c/good"]["created_at"] == "2024-01-01T00:00:00Z"
    assert repos_table["c/late"]["cross_repo_split"] == "ood"
    assert repos_table["c/late"]["commit_sha"] == git(repos["twin"], "rev-parse", "HEAD").strip()


def test_load_dataset_sees_new_content_of_another_or_the_same_folder(tmp_path, repos):
    datasets = pytest.importorskip("datasets")
    cache = str(tmp_path / "hf")  # shared, as the default ~/.cache/huggingface would be
    sizes = {}
    for name, keys in (("x", ["good"]), ("y", ["good", "badfiles"])):
        lst = tmp_path / f"{name}.jsonl"
        lst.write_text("".join(json.dumps({"repo_id": f"{name}/{k}", "url": str(repos[k]),
                                           "split": "cr_test"}) + "\n" for k in keys))
        summary = build(lst, tmp_path / name / "bench", CONFIG, workers=1, progress=False)
        sizes[name] = summary.split_sizes["static"]["test_cross_repo"]
    assert sizes["x"] != sizes["y"]
    for name in ("x", "y", "x"):
        ds = datasets.load_dataset(str(tmp_path / name / "bench"), "static", cache_dir=cache)
        assert len(ds["test_cross_repo"]) == sizes[name]
        assert {r.split("/")[0] for r in ds["test_cross_repo"]["repo_id"]} == {name}
    # rebuilt in place with other content: the new rows, not the cached ones
    lst = tmp_path / "x2.jsonl"
    lst.write_text(json.dumps({"repo_id": "z/other", "url": str(repos["badfiles"]),
                               "split": "cr_test"}) + "\n")
    shutil.rmtree(tmp_path / "x" / "bench")
    build(lst, tmp_path / "x" / "bench", CONFIG, workers=1, progress=False)
    ds = datasets.load_dataset(str(tmp_path / "x" / "bench"), "static", cache_dir=cache)
    assert set(ds["test_cross_repo"]["repo_id"]) == {"z/other"}


def test_output_files_have_the_usual_mode(tmp_path, repos):
    import stat
    repo_list = write_list(tmp_path / "repos.jsonl", repos)
    out = tmp_path / "out"
    build(repo_list, out, CONFIG, workers=1, progress=False)
    mask = os.umask(0)
    os.umask(mask)
    files = list(json.loads((out / "manifest.json").read_text())["files"]) + ["manifest.json"]
    assert len(files) > 5
    for rel in files:
        assert stat.S_IMODE((out / rel).stat().st_mode) == 0o666 & ~mask, rel
    # resume state and clones live beside the published directory, not in it
    assert not [p for p in out.rglob(".*")]
    assert (tmp_path / ".out.work" / "parts" / "static").is_dir()
