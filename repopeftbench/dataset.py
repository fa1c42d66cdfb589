"""Reading a built benchmark directory: its identity (manifest hash) and its tables."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from .io import sha256_file
from .schema import FILE_SPLITS

TASK_CONFIGS = ("static", "evolution")


class Benchmark:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        manifest = self.dir / "manifest.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{self.dir}: no manifest.json; build the benchmark first "
                                    f"(repopeftbench build)")
        self.manifest = json.loads(manifest.read_text())
        self.sha256 = sha256_file(manifest)

    def splits(self, config: str) -> list[str]:
        return [s for s in FILE_SPLITS if (self.dir / config / f"{s}.parquet").exists()]

    def tasks(self, config: str, split: str, limit: int | None = None,
              columns: list[str] | None = None) -> list[dict]:
        """Rows of a split; ``limit`` takes a fixed pseudo-random sample (by task id hash)."""
        if config not in TASK_CONFIGS:
            raise ValueError(f"unknown config {config!r}; choose from {', '.join(TASK_CONFIGS)}")
        if split not in FILE_SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(FILE_SPLITS)}")
        path = self.dir / config / f"{split}.parquet"
        if not path.exists():
            available = ", ".join(self.splits(config)) or "none"
            raise FileNotFoundError(f"{path}: split {split!r} of {config!r} is empty or was not "
                                    f"built (available: {available})")
        rows = pq.read_table(path, columns=columns).to_pylist()
        if limit is not None and limit < len(rows):
            rows.sort(key=lambda r: hashlib.sha256(r["task_id"].encode()).hexdigest())
            rows = sorted(rows[:limit], key=lambda r: (r["repo_id"], r["task_id"]))
        return rows
