"""Offline model aliases: where the weight files of the model packages are found."""
from __future__ import annotations

from pathlib import Path


def test_split_model_parts_are_found_below_the_package(tmp_path, monkeypatch):
    """The qwen2.5-coder-0.5b packages keep their part under data/part0N.bin."""
    import sys

    from evaluators import models
    parts = []
    for i in (1, 2):
        pkg = tmp_path / f"standin_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part0{i}.bin").write_bytes(bytes([i]) * (100 + i))
        parts.append(pkg / "data" / f"part0{i}.bin")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("standin_part1", "standin_part2"):
        sys.modules.pop(name, None)
    source = models.GGUFSource(("standin_part1", "standin_part2"), "joined.gguf", "stand-in")
    work = tmp_path / "work"
    work.mkdir()
    d, name = models._gguf_file(source, work)
    assert (d / name).read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()


def test_a_model_converted_by_two_processes_at_once_keeps_the_first_copy(tmp_path):
    """Shards started together on an empty cache each convert the model: the second to
    finish finds the directory in place and keeps it instead of failing."""
    import pytest

    from evaluators.models import publish_directory

    def finished(name: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(name)
        return d

    dest = tmp_path / "models" / "m"
    dest.parent.mkdir()
    publish_directory(finished("first"), dest)
    publish_directory(finished("second"), dest)
    assert (dest / "config.json").read_text() == "first"
    broken = tmp_path / "models" / "half"
    broken.mkdir()
    (broken / "stray").write_text("")          # not a model directory: a real error
    with pytest.raises(OSError):
        publish_directory(finished("third"), broken)
