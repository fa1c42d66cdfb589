"""Repository list parsing and split assignment."""
from __future__ import annotations

from collections import Counter

import pytest

from miners.repolist import RepoListError, read_repo_list
from repopeftbench.splits import chronological_split, cross_repo_split, in_repo_split, parse_time


def test_csv_and_jsonl_rows(tmp_path):
    csv = tmp_path / "repos.csv"
    csv.write_text("repo_id,url,sha,licence,stars,created_at,split\n"
                   "a/b,https://example.invalid/a/b.git,ABCDEF12,MIT,350,2024-01-01,\n"
                   "c/d,local/dir,,Apache-2.0,,2025-06-01,ood\n")
    good, bad = read_repo_list(csv)
    assert bad == []
    assert good[0].repo_id == "a/b" and good[0].is_remote and good[0].sha == "abcdef12"
    assert good[0].stars == 350 and good[0].license == "MIT"
    assert not good[1].is_remote and good[1].split == "ood"
    assert good[1].location == str((tmp_path / "local/dir").resolve())
    assert good[1].url == "local/dir"  # stored as listed: outputs do not depend on the checkout path
    jsonl = tmp_path / "repos.jsonl"
    jsonl.write_text('{"repo_id": "x/y", "url": "git@example.invalid:x/y.git"}\n\n# comment\n')
    good, bad = read_repo_list(jsonl)
    assert len(good) == 1 and good[0].is_remote and bad == []


def test_bad_rows_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "repos.jsonl"
    path.write_text('{"repo_id": "ok/one", "url": "/tmp/x"}\n'
                    '{"url": "/tmp/y"}\n'
                    'not json\n'
                    '{"repo_id": "ok/one", "url": "/tmp/z"}\n'
                    '{"repo_id": "s/t", "url": "/tmp/w", "sha": "zzz"}\n'
                    '{"repo_id": "s/u", "url": "/tmp/w", "split": "weird"}\n'
                    '[1, 2]\n')
    good, bad = read_repo_list(path)
    assert [g.repo_id for g in good] == ["ok/one"]
    reasons = {b.source.rsplit(":", 1)[1]: b.reason for b in bad}
    assert reasons["2"] == "missing required field 'repo_id'"
    assert reasons["3"].startswith("invalid JSON")
    assert reasons["4"].startswith("duplicate repo_id 'ok/one' (first at")
    assert "not a hexadecimal commit id" in reasons["5"]
    assert "split 'weird' is not one of" in reasons["6"]
    assert reasons["7"] == "a JSON object is expected"
    assert all(b.source.startswith(str(path)) for b in bad)


@pytest.mark.parametrize("content, suffix, message", [
    (None, ".csv", "cannot read repository list"),
    (b"", ".csv", "empty repository list"),
    (b"repo_id\nfoo\n", ".csv", "header lacks required column(s) url"),
    (b"\xff\xfe\x00bad", ".jsonl", "not UTF-8"),
    (b"repo_id,url\n", ".txt", "unknown list format"),
    (b"", ".jsonl", "has no rows"),
])
def test_unreadable_lists_raise_naming_the_file(tmp_path, content, suffix, message):
    path = tmp_path / f"list{suffix}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RepoListError) as err:
        read_repo_list(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_cross_repo_split_is_stable_and_roughly_10_10_80():
    ids = [f"owner/repo{i}" for i in range(2000)]
    splits = {r: cross_repo_split(r, seed=0) for r in ids}
    more = {r: cross_repo_split(r, seed=0) for r in ids + [f"new/r{i}" for i in range(500)]}
    assert all(more[r] == splits[r] for r in ids)  # adding repositories moves none
    counts = Counter(splits.values())
    assert 150 < counts["cr_val"] < 250 and 150 < counts["cr_test"] < 250
    assert cross_repo_split("a/b", 0, forced="ood") == "ood"
    assert cross_repo_split("a/b", 0, is_ood=True) == "ood"
    assert Counter(cross_repo_split(r, seed=1) for r in ids) != counts


def test_in_repo_split_exact_and_seeded():
    ids = [f"t{i}" for i in range(103)]
    split = in_repo_split(ids, seed=0)
    assert Counter(split.values()) == Counter({"train": 83, "val": 10, "test": 10})
    assert in_repo_split(list(reversed(ids)), seed=0) == split
    assert in_repo_split(ids, seed=1) != split
    assert Counter(in_repo_split(ids[:3], 0).values()) == Counter({"train": 3})


def test_chronological_split_and_time_parsing():
    assert chronological_split(10) == ["train"] * 8 + ["val", "test"]
    assert parse_time("2025-04-01") == parse_time("2025-04-01T00:00:00Z") == 1743465600
    with pytest.raises(ValueError, match="not an ISO-8601 date"):
        parse_time("April 1st")
