"""Static track miner: one snapshot of a repository -> assertion-completion tasks."""
from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import asdict, dataclass, field

import tree_sitter_python
from tree_sitter import Language, Node, Parser, Query, QueryCursor

from .assertions import find_candidates
from repopeftbench.reasons import Reason

from .filters import apply_caps, prefix_reason, target_reason
from .git import GitRepo, TreeEntry
from .paper_profile import PROFILES, paper_balance, path_is_test, text_is_test
from .prefix import PrefixBuilder
from .targets import comment_ranges, comments_within, flatten, target_type
from .testfiles import is_test_file

PY_LANGUAGE = Language(tree_sitter_python.language())
# The grammar still accepts Python 2 print/exec statements; Python 3 does not.
_PY2_HINT = re.compile(rb"^[ \t]*(print|exec)\b[ \t]*[^\s(=]", re.M)  # cheap pre-check
_PY2_QUERY = Query(PY_LANGUAGE, "(print_statement) @py2 (exec_statement) @py2")


@dataclass(frozen=True)
class StaticMinerConfig:
    max_file_bytes: int = 1_000_000
    prefix_max_lines: int = 600
    max_target_chars: int = 500
    cap_per_function: int = 5
    cap_per_file: int = 20
    cap_per_repo: int = 200
    profile: str = "default"   # "paper": the published selection (miners/paper_profile.py)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose from {', '.join(PROFILES)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.profile == "default":
            del d["profile"]  # the default profile keeps the configuration hash it always had
        return d


@dataclass
class StaticResult:
    rows: list[dict]                       # STATIC columns minus the split columns
    n_test_files: int
    filter_counts: Counter = field(default_factory=Counter)
    file_skips: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    n_candidates: int = 0


def make_parser() -> Parser:
    return Parser(PY_LANGUAGE)


def task_id(repo_id: str, test_file: str, test_class: str | None, test_function: str,
            family: str, target: str) -> str:
    """Stable id from content and position; unique within a repo after (file, target) dedup."""
    key = "\0".join([repo_id, test_file, test_class or "", test_function, family, target])
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()[:20]


def first_error_line(root: Node) -> int:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            return node.start_point.row + 1
        if node.has_error:
            stack.extend(reversed(node.children))
    return root.start_point.row + 1


def syntax_problem(root: Node) -> str | None:
    """Why a parsed file is not valid Python 3, or None."""
    if root.has_error:
        return f"does not parse (line {first_error_line(root)})"
    if not _PY2_HINT.search(root.text):
        return None
    py2 = QueryCursor(_PY2_QUERY).captures(root).get("py2")
    if py2:
        first = min(n.start_point.row for n in py2) + 1
        return f"Python 2 syntax (line {first})"
    return None


def decode_python(data: bytes) -> tuple[Reason | None, str | None]:
    """(reason to skip and detail) or (None, None). Binary (NUL bytes) and non-UTF-8 files
    are skipped."""
    if b"\0" in data:
        return Reason.FILE_BINARY, "contains NUL bytes"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reason.FILE_NON_UTF8, f"invalid UTF-8 at byte {exc.start}"
    return None, None


def read_blob_checked(repo: GitRepo, entry: TreeEntry, max_bytes: int
                      ) -> tuple[bytes | None, Reason | None, str]:
    """File bytes, or (None, skip reason, detail): symlinks, oversize and missing blobs."""
    if entry.is_symlink:
        return None, Reason.FILE_SYMLINK, "symbolic link (never followed)"
    if entry.kind != "blob":
        return None, Reason.FILE_SUBMODULE, "submodule"
    if entry.size > max_bytes:
        return None, Reason.FILE_TOO_LARGE, f"{entry.size} bytes > max_file_bytes={max_bytes}"
    data = repo.read_blob(entry.oid)
    if data is None:
        return None, Reason.FILE_MISSING_OBJECT, f"blob {entry.oid} is missing from the repository"
    return data, None, ""


def read_test_file(repo: GitRepo, entry: TreeEntry, config: StaticMinerConfig
                   ) -> tuple[bytes | None, Reason | None, str]:
    """File bytes, or (None, skip reason, detail)."""
    data, reason, detail = read_blob_checked(repo, entry, config.max_file_bytes)
    if data is None:
        return None, reason, detail
    reason, detail = decode_python(data)
    if reason:
        return None, reason, detail or ""
    return data, None, ""


def tasks_in_file(source: bytes, root: Node, path: str, repo_id: str, commit_sha: str,
                  commit_idx: int, config: StaticMinerConfig, counts: Counter) -> tuple[list[dict], int]:
    """Filtered (not yet capped) tasks of one parsed test file, and the candidate count."""
    rows: list[dict] = []
    seen_targets: set[str] = set()
    paper = {} if config.profile == "paper" else None  # paper: no dedup here, multi-line kept
    prefixes = PrefixBuilder(source, root, config.prefix_max_lines)
    comments = comment_ranges(root)
    candidates = find_candidates(root)
    for cand in candidates:
        target = flatten(source, cand.cut, cand.end, comments_within(comments, cand.cut, cand.end))
        func = cand.function
        reason = target_reason(func is not None, target, config.max_target_chars, config.profile)
        prefix = ""
        if reason is None:
            assert func is not None
            prefix = prefixes.prefix(cand)  # only built for tasks that pass the target checks
            reason = prefix_reason(prefix)
            if reason is None and paper is None and target in seen_targets:
                reason = Reason.DUPLICATE
        if reason:
            counts[reason] += 1
            continue
        seen_targets.add(target)
        assert func is not None
        fname = func.child_by_field_name("name")
        test_function = fname.text.decode(errors="replace") if fname is not None else ""
        classes = [c.child_by_field_name("name") for c in cand.classes]
        test_class = ".".join(c.text.decode(errors="replace") for c in classes if c is not None) or None
        lineno = bisect_right(prefixes.starts, cand.cut)
        col = cand.cut - prefixes.starts[lineno - 1]
        rows.append({
            "task_id": task_id(repo_id, path, test_class, test_function, cand.family, target),
            "repo_id": repo_id, "commit_sha": commit_sha, "commit_idx": commit_idx,
            "test_file": path, "lineno": lineno, "col_offset": col, "byte_offset": cand.cut,
            "assertion_type": cand.family, "target_type": target_type(cand.main),
            "test_class": test_class, "test_function": test_function,
            "prefix": prefix, "target": target,
        })
        if paper is not None:
            rows[-1]["_multiline"] = b"\n" in source[cand.cut:cand.end]
    return rows, len(candidates)


def mine_static(repo: GitRepo, commit_sha: str, repo_id: str, config: StaticMinerConfig,
                commit_idx: int = 0, seed: int = 0) -> StaticResult:
    """Mine the static track of one snapshot: filters and caps applied, rows in file order."""
    parser = make_parser()
    entries, preread = _test_files(repo, commit_sha, config)
    result = StaticResult(rows=[], n_test_files=len(entries))
    counts = result.filter_counts
    all_rows: list[dict] = []
    for entry in entries:
        if entry.path in preread:
            data, reason, detail = preread[entry.path], None, ""
        else:
            data, reason, detail = read_test_file(repo, entry, config)
        if data is None:
            result.file_skips.append((entry.path, f"{reason}: {detail}"))
            counts[reason] += 1
            continue
        tree = parser.parse(data)
        problem = syntax_problem(tree.root_node)
        if problem:
            result.file_skips.append((entry.path, f"{Reason.FILE_SYNTAX_ERROR}: {problem}"))
            counts[Reason.FILE_SYNTAX_ERROR] += 1
            continue
        rows, n_cand = tasks_in_file(data, tree.root_node, entry.path, repo_id, commit_sha,
                                     commit_idx, config, counts)
        result.n_candidates += n_cand
        all_rows.extend(rows)
    result.rows = cap_tasks(all_rows, config, seed, counts)
    return result


def _test_files(repo: GitRepo, commit_sha: str, config: StaticMinerConfig
                ) -> tuple[list[TreeEntry], dict[str, bytes]]:
    """The snapshot's test files in path order, and the files already read to decide it."""
    blobs = [e for e in repo.ls_tree(commit_sha) if e.kind == "blob"]
    if config.profile != "paper":
        return sorted((e for e in blobs if is_test_file(e.path)), key=lambda e: e.path), {}
    entries, preread = [], {}
    for e in sorted((e for e in blobs if e.path.endswith(".py")), key=lambda e: e.path):
        if path_is_test(e.path):
            entries.append(e)
            continue
        data, _, _ = read_test_file(repo, e, config)  # decided by its text
        if data is not None and text_is_test(data):
            entries.append(e)
            preread[e.path] = data
    return entries, preread


def cap_tasks(rows: list[dict], config: StaticMinerConfig, seed: int, counts: Counter) -> list[dict]:
    """Per-function, then per-file, then per-repository caps, stratified by target type (the
    ``paper`` profile: the published balancing)."""
    if config.profile == "paper":
        kept = paper_balance(rows, config.cap_per_function, config.cap_per_file,
                             config.cap_per_repo, counts)
        order = {id(r): i for i, r in enumerate(rows)}
        kept.sort(key=lambda r: order[id(r)])
        for r in kept:
            del r["_multiline"]
        return kept
    caps = [(Reason.CAP_FUNCTION, lambda r: (r["test_file"], r["test_class"], r["test_function"]),
             config.cap_per_function),
            (Reason.CAP_FILE, lambda r: r["test_file"], config.cap_per_file),
            (Reason.CAP_REPO, lambda r: 0, config.cap_per_repo)]
    return apply_caps(rows, caps, kind=lambda r: r["target_type"],
                      ident=lambda r: r["task_id"], seed=seed, counts=counts)
