"""The command line: --help everywhere, build and stats through main()."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from repopeftbench.cli import main, make_parser

from conftest import make_repo


def subcommands() -> list[str]:
    parser = make_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", [[]] + [[c] for c in subcommands()])
def test_help_on_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: repopeftbench" in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "repopeftbench", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("repopeftbench ")


def test_build_then_stats(tmp_path, capsys):
    repo = make_repo(tmp_path / "r", {"tests/test_a.py": "def test_a():\n    assert f() == 42\n"})
    repo_list = tmp_path / "repos.csv"
    repo_list.write_text(f"repo_id,url\nme/r,{repo}\n")
    assert main(["build", "--repos", str(repo_list), "--out", str(tmp_path / "o"),
                 "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1/1 repositories gave tasks; 1 static rows" in out
    assert main(["stats", str(tmp_path / "o"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["static"]["n_tasks"] == 1 and stats["static"]["families"]["assert"] == 1
    assert main(["stats", str(tmp_path / "o")]) == 0
    assert "## Static track: 1 tasks" in capsys.readouterr().out


def test_clear_errors_for_bad_arguments(tmp_path, capsys):
    assert main(["build", "--repos", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read repository list" in capsys.readouterr().err
    assert main(["build", "--repos", "x.csv", "--out", "o", "--cutoff", "soon"]) == 2
    assert "not an ISO-8601 date: 'soon'" in capsys.readouterr().err
    assert main(["build", "--repos", "x.csv", "--out", "o", "--tracks", "bogus"]) == 2
    assert main(["stats", str(tmp_path)]) == 2
    assert "no manifest.json; build the benchmark first" in capsys.readouterr().err


def test_build_where_every_repository_fails_writes_its_report_and_no_benchmark(tmp_path, capsys):
    repo_list = tmp_path / "repos.jsonl"
    repo_list.write_text('{"repo_id": "x/y", "url": "file:///nonexistent/repo.git"}\n')
    out = tmp_path / "o"
    assert main(["build", "--repos", str(repo_list), "--out", str(out), "--workers", "1",
                 "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "x/y [static]: cannot clone file:///nonexistent/repo.git: fatal:" in captured.out
    assert "no repository gave tasks" in captured.err
    work = tmp_path / ".o.work"
    assert f"listed in {work / 'failures.jsonl'}" in captured.out
    assert json.loads((work / "failures.jsonl").read_text())["repo_id"] == "x/y"
    assert not out.exists()           # nothing published: no empty benchmark to mistake


def test_methods_lists_builtin_methods(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "pretrained" in out and "gold" in out and "empty" in out
