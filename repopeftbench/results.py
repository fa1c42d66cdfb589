"""The results record (``results.json``): what a scored run reports, defined once.

Written by ``evaluate`` and ``score``, read by ``leaderboard`` and ``compare``.

``scores`` holds, for each metric, micro and macro means in % with 95% confidence
intervals from a bootstrap over repositories; breakdowns by assertion family and target
type and knowledge source; and one entry per repository. A teacher-forced run
(``scoring``) holds ``tf_em``, ``tf_token_acc`` (in %) and ``tf_logprob`` (mean log-probability
per target token, nats) instead of the generated metrics. Adapter methods add an ``audit``: the same tasks
scored with each row's own adapter, with the mean adapter and with a shuffled adapter
(another repository's or commit's), and the raw pairwise cosine of the adapters.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .io import write_json

RESULTS_FILE = "results.json"


def headline_metric(scoring: str) -> str:
    """The metric a run is ranked by: em, or tf_em for a teacher-forced run."""
    return "tf_em" if scoring == "teacher-forced" else "em"
RESULTS_VERSION = "2"


@dataclass
class DatasetRef:
    dir: str
    manifest_sha256: str
    config: str                 # track: static or evolution
    split: str
    limit: int | None = None    # a fixed sample of this many tasks, or None for all
    profile: str | None = None  # the build's selection profile, when it records one
    sample: str = "hash"        # how the limited sample was drawn (Benchmark.tasks)
    repos: int | None = None    # the split's first N repositories only (Benchmark.tasks), or all


@dataclass
class ModelRef:
    name: str | None
    revision: str | None = None


@dataclass
class Results:
    run_key: str
    dataset: DatasetRef
    method: dict[str, Any]              # {"name": ..., every option}
    model: ModelRef
    scores: dict[str, Any]              # see the module docstring
    seed: int = 0
    packages: dict[str, str | None] = field(default_factory=dict)
    device: str | None = None
    generation: dict[str, Any] | None = None
    backend: dict[str, Any] | None = None   # {"name", "options"}: the engine that predicted
    wall_time_s: float = 0.0
    n_predicted_now: int = 0
    checkpoint: str | None = None       # the trained method's checkpoint directory
    submission: str | None = None       # the predictions file, for scored submissions
    audit: dict[str, Any] | None = None
    scoring: str = "generate"           # or "teacher-forced" (metrics tf_em, tf_token_acc, tf_logprob)
    shard: dict[str, Any] | None = None  # {"index", "count", "repos", "n_tasks_all"} of a shard
    version: str = RESULTS_VERSION

    @property
    def headline(self) -> str:
        """The metric the run is ranked by."""
        return headline_metric(self.scoring)

    @property
    def method_name(self) -> str:
        return str(self.method["name"])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "results") -> "Results":
        try:
            known = {f.name for f in fields(cls)}
            d = {k: v for k, v in d.items() if k in known}
            d["dataset"] = DatasetRef(**{k: v for k, v in d["dataset"].items()
                                         if k in {f.name for f in fields(DatasetRef)}})
            d["model"] = ModelRef(**d["model"])
            out = cls(**d)
            out.scores["metrics"][out.headline]["micro"]  # noqa: B018 - the headline must be there
            return out
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: not a results record ({type(exc).__name__}: {exc})") from None

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / RESULTS_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ValueError(f"{path}: cannot read results ({exc})") from None
        return cls.from_dict(data, str(path))
