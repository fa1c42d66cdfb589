"""Predictions files: the format our runs write and anyone may submit.

JSONL. Line 1 is a header object: ``{"dataset_sha256": ..., "config": ..., "split": ...}``
(plus optional ``method``, ``model``). Every other line is
``{"task_id": str, "prediction": str}`` with an optional ``raw`` string (the generation
before cleaning). A submission is data: nothing in it is executed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from repopeftbench.errors import UserError


class SubmissionError(UserError, ValueError):
    """A predictions file is malformed; the message lists every problem with its line."""


@dataclass
class Submission:
    header: dict
    predictions: dict[str, str]


def read_submission(path: str | Path, expected_ids: set[str], dataset_sha256: str,
                    config: str, split: str, max_errors: int = 20) -> Submission:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot read predictions ({exc})") from None
    errors: list[str] = []
    lines = text.splitlines()
    if not lines:
        raise SubmissionError(f"{path}: empty file (a header line is required)")
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict):
            raise ValueError
    except (ValueError, RecursionError):
        raise SubmissionError(f"{path}:1: the first line must be a JSON header object") from None
    if header.get("dataset_sha256") != dataset_sha256:
        errors.append(f"{path}:1: dataset_sha256 {header.get('dataset_sha256')!r} does not match "
                      f"the benchmark ({dataset_sha256})")
    for key, want in (("config", config), ("split", split)):
        if header.get(key) != want:
            errors.append(f"{path}:1: {key} {header.get(key)!r} does not match {want!r}")
    preds: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{n}: not valid JSON ({exc.msg})")
            continue
        except RecursionError:
            errors.append(f"{path}:{n}: a JSON value nested too deeply")
            continue
        if not isinstance(obj, dict):
            errors.append(f"{path}:{n}: a JSON object is expected")
            continue
        tid, pred = obj.get("task_id"), obj.get("prediction")
        if not isinstance(tid, str):
            errors.append(f"{path}:{n}: task_id must be a string, got {type(tid).__name__}")
            continue
        if not isinstance(pred, str):
            errors.append(f"{path}:{n}: prediction must be a string, got {type(pred).__name__}")
            continue
        if "raw" in obj and not isinstance(obj["raw"], str):
            errors.append(f"{path}:{n}: raw must be a string, got {type(obj['raw']).__name__}")
        if tid in first_line:
            errors.append(f"{path}:{n}: duplicate task_id {tid!r} (first on line {first_line[tid]})")
            continue
        if tid not in expected_ids:
            errors.append(f"{path}:{n}: unknown task_id {tid!r} (not in {config}/{split})")
            continue
        first_line[tid] = n
        preds[tid] = pred
    missing = sorted(expected_ids - set(preds))
    if missing:
        errors.append(f"{path}: {len(missing)} task(s) have no prediction, e.g. {missing[:3]}")
    if errors:
        shown = errors[:max_errors]
        more = f"\n... and {len(errors) - max_errors} more" if len(errors) > max_errors else ""
        raise SubmissionError(f"{len(errors)} problem(s) in {path}:\n" + "\n".join(shown) + more)
    return Submission(header, preds)
