"""A published benchmark is never silently changed, and damaged inputs are one-line
errors naming the file: verify, the dataset identity, caches, submissions, checkpoints."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from miners.build import BuildConfig, build
from repopeftbench.dataset import Benchmark
from repopeftbench.errors import UserError
from repopeftbench.verify import BenchmarkChangedError, verify

from conftest import commit_files, make_repo

TEST = ("def test_a():\n" + "".join(f"    assert compute({i}) == {i * 11 + 100}\n" for i in range(12))
        + "\n\ndef test_b():\n" + "".join(f"    assert name({i}) == 'n{i}'\n" for i in range(12)))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    rows = []
    for k in range(3):
        repo = make_repo(root / f"r{k}", {"pkg/m.py": f"K = {k}\n", "tests/test_m.py": TEST})
        commit_files(repo, {"tests/test_n.py": TEST.replace("test_a", "test_c")},
                     date="2024-02-01T00:00:00Z")
        rows.append({"repo_id": f"i/r{k}", "url": str(repo), "split": "cr_test"})
    lst = root / "l.jsonl"
    lst.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build(lst, root / "bench", BuildConfig(), workers=1, progress=False)
    return root / "bench"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repopeftbench", *args], capture_output=True,
                          text=True)


def _copy(bench: Path, tmp_path: Path) -> Path:
    import shutil
    dest = tmp_path / "bench"
    shutil.copytree(bench, dest)
    return dest


def test_verify_passes_on_a_fresh_build_and_caches_hashes(bench):
    first = verify(bench)
    assert first.ok and first.n_files == len(json.loads((bench / "manifest.json").read_text())["files"]) + 1
    again = verify(bench)
    assert again.ok and again.n_hashed == 0 and again.identity == first.identity
    proc = cli("verify", str(bench))
    assert proc.returncode == 0 and "OK" in proc.stdout and first.identity in proc.stdout
    assert Benchmark(bench).sha256 == first.identity


def test_a_changed_table_is_refused_everywhere(bench, tmp_path):
    b = _copy(bench, tmp_path)
    path = b / "static" / "test_cross_repo.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()[5:]                       # 5 tasks removed, one target changed
    rows[0]["target"] = "'tampered'"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    report = verify(b)
    assert not report.ok and str(path) in report.problems[0] and "changed" in report.problems[0]
    with pytest.raises(BenchmarkChangedError, match="test_cross_repo.parquet"):
        Benchmark(b)
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"dataset_sha256": "x", "config": "static", "split": "test_cross_repo"}\n')
    for args in (["verify", str(b)], ["stats", str(b)],
                 ["score", "--dataset", str(b), "--split", "test_cross_repo", "--predictions",
                  str(preds)],
                 ["evaluate", "--dataset", str(b), "--split", "test_cross_repo", "--method",
                  "gold", "--out", str(tmp_path / "run")]):
        proc = cli(*args)
        assert proc.returncode != 0, args
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert errors and "test_cross_repo.parquet" in errors[0], (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_identity_follows_the_bytes_and_unlisted_tables_are_found(bench, tmp_path):
    b = _copy(bench, tmp_path)
    before = verify(b, use_cache=False).identity
    path = b / "static" / "test_cross_repo.parquet"
    path.write_bytes(path.read_bytes()[:100])          # truncated
    report = verify(b)
    assert report.identity != before and "changed" in report.problems[0]
    (b / "static" / "extra.parquet").write_bytes(b"PAR1")
    assert any("does not list" in p for p in verify(b).problems)


def test_a_broken_prediction_cache_line_is_ignored_with_a_warning(tmp_path, capsys):
    from evaluators.harness import _open_cache_for_append, _read_cache
    path = tmp_path / "cache.jsonl"
    good = json.dumps({"task_id": "a", "raw": "1", "prediction": "1"}).encode()
    cut = json.dumps({"task_id": "b", "raw": "café", "prediction": "café"}, ensure_ascii=False).encode()
    path.write_bytes(good + b"\n" + cut[:cut.index("é".encode()) + 1])   # inside a UTF-8 char
    assert set(_read_cache(path)) == {"a"}
    assert "1 broken cache line(s) ignored" in capsys.readouterr().err
    with _open_cache_for_append(path) as fh:           # the cut line is ended first
        fh.write(json.dumps({"task_id": "c", "raw": "2", "prediction": "2"}).encode() + b"\n")
    assert set(_read_cache(path)) == {"a", "c"}


def test_every_finished_task_is_cached_before_an_interruption(tmp_path):
    from evaluators.backends.base import Request
    from evaluators.harness import _predict_all, _read_cache

    class Dying:
        def generate(self, requests, desc="", on_result=None):
            for i in range(3):
                on_result(i, f"out{i}")
            raise KeyboardInterrupt

    tasks = [{"task_id": f"t{i}", "target": "x"} for i in range(5)]
    method = SimpleNamespace(predict=lambda repo, group: [Request(f"p{t['task_id']}") for t in group],
                             context=SimpleNamespace(backend=lambda: Dying()), name="m")
    cache = tmp_path / "cache.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _predict_all([(method, None, cache, {})], {"r": tasks}, "m")
    assert sorted(_read_cache(cache)) == ["t0", "t1", "t2"]


def test_a_deeply_nested_prediction_is_a_listed_problem(tmp_path):
    from evaluators.submission import SubmissionError, read_submission
    p = tmp_path / "p.jsonl"
    p.write_text('{"dataset_sha256": "d", "config": "static", "split": "s"}\n'
                 + '{"task_id": "a", "prediction": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(SubmissionError, match=r"p.jsonl:2: a JSON value nested too deeply"):
        read_submission(p, {"a"}, "d", "static", "s")


def test_damaged_safetensors_and_checkpoint_records_are_one_line_errors(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from evaluators.harness import read_checkpoint
    from repopeftbench.io import read_safetensors
    good = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(64)}, str(good))
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(UserError, match=r"cut.safetensors: not a readable safetensors file"):
        read_safetensors(bad)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "method.json").write_text('{"method": "shared-lora", ')
    with pytest.raises(UserError, match=r"method.json: the checkpoint record is not valid JSON"):
        read_checkpoint(ckpt)


def test_markdown_tables_escape_user_supplied_names():
    from repopeftbench.stats import Markdown, markdown_table
    table = markdown_table(["method"], [["<script>alert(1)</script>|x"], [Markdown("`code`")]])
    assert "<script>" not in table and "&lt;script&gt;" in table and "\\|x" in table
    assert "| `code` |" in table
