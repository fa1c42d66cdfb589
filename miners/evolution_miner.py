"""Evolution track miner: replay first-parent history, emit tasks for assertion events.

For each test file a commit touches, its assertions before and after the commit are
compared, identified by (enclosing test's qualified name, family, normalised
statement). An assertion present after and absent before is an event: "modified"
when it replaces a different (now gone) assertion at the same position of the same
function, "added" otherwise. A commit is kept when at least one event gives a valid
task; each kept commit stores the diff of production code since the previous kept
commit. The replay state is small and serialisable, so a later run continues from
the last processed commit (incremental update) with the same result.
"""
from __future__ import annotations

import hashlib
import queue
import threading
from collections import Counter, OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

from repopeftbench.reasons import Reason

from .assertions import Candidate, find_candidates
from .filters import target_reason
from .git import Change, GitRepo, LogCommit, diff_tree_pairs, iter_first_parent_log
from .prefix import file_prefix
from .incremental import AssertionIndex, keys_from
from .static_miner import decode_python, make_parser, syntax_problem
from .targets import comments_under, comments_within, flatten, target_type
from .testfiles import is_test_file

# Production code: non-test .py/.md/.rst files (git pathspecs, glob magic).
PRODUCTION_PATHSPECS = [":(glob)**/*.py", ":(glob)**/*.md", ":(glob)**/*.rst",
                        ":(exclude,glob)**/test_*.py", ":(exclude,glob)**/*_test.py",
                        ":(exclude,glob)**/tests/**", ":(exclude,glob)**/test/**"]
Key = tuple[str, str, str]  # (qualified test name, family, normalised statement)


@dataclass(frozen=True)
class EvolutionMinerConfig:
    max_file_bytes: int = 1_000_000
    max_target_chars: int = 500
    max_diff_bytes: int = 1_000_000
    eval_cap_per_commit: int = 8
    train_cap_per_file: int = 4
    train_min_target_chars: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvolutionState:
    """Where a replay stopped: enough to continue it later with identical results."""
    head: str | None = None
    n_commits: int = 0
    last_kept: str | None = None
    last_kept_tree: str | None = None
    last_commit_time: int | None = None
    files: dict[str, list[list[str]]] = field(default_factory=dict)  # path -> last good keys

    def to_dict(self) -> dict:
        return {"head": self.head, "n_commits": self.n_commits, "last_kept": self.last_kept,
                "last_kept_tree": self.last_kept_tree, "last_commit_time": self.last_commit_time,
                "files": {p: self.files[p] for p in sorted(self.files)}}

    @classmethod
    def from_dict(cls, d: dict) -> "EvolutionState":
        return cls(d["head"], d["n_commits"], d["last_kept"], d["last_kept_tree"],
                   d["last_commit_time"], d["files"])


@dataclass
class EvolutionResult:
    commits: list[dict]   # COMMITS columns minus split columns
    tasks: list[dict]     # EVOLUTION columns minus split columns
    counts: Counter
    state: EvolutionState


def file_assertions(root) -> list[tuple[Key, Candidate]]:
    """Assertions inside functions, in source order, with their identity keys."""
    cands = [c for c in find_candidates(root) if c.qualname is not None and c.stmt is not None]
    return list(zip(keys_from(cands), cands))


def assertion_events(before: list[Key], after: list[Key]) -> list[tuple[str, int]]:
    """("added" | "modified", index into ``after``) for each assertion new after the commit.

    Walking ``after`` in order, the first n occurrences of a key that ``before`` holds n
    times are old; each later one is new: "modified" when the assertion at the same place
    of the same function before the commit is one that no longer exists, else "added".
    Only keys that occur more often after than before can be new, so functions without
    one are skipped."""
    before_count, after_count = Counter(before), Counter(after)
    new_keys = {k for k, n in after_count.items() if n > before_count[k]}
    if not new_keys:
        return []
    funcs = {k[0] for k in new_keys}
    before_by_func: dict[str, list[Key]] = {}
    for key in before:
        if key[0] in funcs:
            before_by_func.setdefault(key[0], []).append(key)
    position: Counter = Counter()    # assertions of the function seen so far
    seen: Counter = Counter()        # occurrences of each new key seen so far
    events = []
    for idx, key in enumerate(after):
        func = key[0]
        if func not in funcs:
            continue
        i = position[func]
        position[func] += 1
        if key not in new_keys:
            continue
        seen[key] += 1
        if seen[key] <= before_count[key]:
            continue
        old = before_by_func.get(func)
        if old is not None and i < len(old) and old[i] != key and after_count[old[i]] == 0:
            events.append(("modified", idx))
        else:
            events.append(("added", idx))
    return events


class _BlobCache:
    """Assertion keys per blob id, bounded (LRU)."""

    def __init__(self, size: int = 4096):
        self.size, self.data = size, OrderedDict()

    def get(self, oid: str):
        if oid in self.data:
            self.data.move_to_end(oid)
            return self.data[oid]
        return None

    def put(self, oid: str, value) -> None:
        self.data[oid] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


def empty_tree(repo: GitRepo) -> str:
    return repo.run(["hash-object", "-t", "tree", "/dev/null"]).strip()


def production_diffs(repo: GitRepo, pairs: list[tuple[str, str]], max_bytes: int,
                     counts: Counter) -> list[str]:
    """Production-code diffs for (old tree, new tree) pairs, each cut at ``max_bytes``."""
    out = []
    for raw in diff_tree_pairs(repo, pairs, PRODUCTION_PATHSPECS):
        text = raw[:max_bytes].decode("utf-8", errors="replace")
        if len(raw) > max_bytes:
            counts[Reason.DIFF_TRUNCATED] += 1
            text += f"\n[diff truncated at {max_bytes} bytes]\n"
        out.append(text)
    return out


def _read_ahead(repo: GitRepo, rev_range: str, depth: int = 64
                ) -> Iterator[tuple[LogCommit, dict[str, bytes | None]]]:
    """The first-parent log of ``rev_range``, each commit with the new versions of the
    test files it changes, read by a thread up to ``depth`` commits ahead (its own
    ``git log`` and ``cat-file`` processes): git reads and inflates objects while the
    replay parses."""
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def reader() -> None:
        try:
            with GitRepo(repo.path) as own:
                for commit in iter_first_parent_log(own, rev_range):
                    wanted = [ch.new_oid for ch in commit.changes if ch.status != "D"
                              and ch.new_mode not in ("160000", "120000") and is_test_file(ch.path)]
                    item = (commit, own.read_blobs(wanted) if wanted else {})
                    while not stop.is_set():
                        try:
                            ahead.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            ahead.put(done)
        except BaseException as exc:   # handed to the replay, which raises it
            ahead.put(exc)

    thread = threading.Thread(target=reader, name="git-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():     # unblock a reader waiting on a full queue
            try:
                ahead.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def _production_diffs_counted(repo: GitRepo, pairs: list[tuple[str, str]],
                              max_bytes: int) -> tuple[list[str], Counter]:
    """``production_diffs`` with its own counter (it runs beside the replay)."""
    counts: Counter = Counter()
    return production_diffs(repo, pairs, max_bytes, counts), counts


def _task_row(repo_id: str, sha: str, index: int, path: str, source: bytes,
              kind: str, cand: Candidate, target: str) -> dict:
    lineno = source.count(b"\n", 0, cand.cut) + 1    # rows as tree-sitter counts them
    line_start = source.rfind(b"\n", 0, cand.cut) + 1
    classes = [c.child_by_field_name("name") for c in cand.classes]
    func_name = cand.function.child_by_field_name("name")  # type: ignore[union-attr]
    key = "\0".join([repo_id, sha, path, cand.qualname or "", cand.family, target])
    return {
        "task_id": hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()[:20],
        "repo_id": repo_id, "commit_index": index, "commit_sha": sha, "test_file": path,
        "lineno": lineno, "col_offset": cand.cut - line_start,
        "assertion_type": cand.family, "target_type": target_type(cand.main),
        "test_class": ".".join(c.text.decode(errors="replace") for c in classes if c is not None) or None,
        "test_function": func_name.text.decode(errors="replace") if func_name is not None else "",
        "event": kind, "prefix": file_prefix(source, cand.cut), "target": target,
    }


def mine_evolution(repo: GitRepo, head: str, repo_id: str, config: EvolutionMinerConfig,
                   state: EvolutionState | None = None, progress=None,
                   task_sink: Callable[[list[dict]], None] | None = None,
                   commit_sink: Callable[[list[dict]], None] | None = None,
                   diff_chunk: int = 64, window: bool = True,
                   parse_stats: dict | None = None) -> EvolutionResult:
    """Replay first-parent history up to ``head`` (from ``state.head`` when given).

    Tasks go to ``task_sink`` one kept commit at a time, and commits (with their diffs,
    computed ``diff_chunk`` commits per ``git diff-tree`` call) to ``commit_sink``, when
    given: memory stays bounded on long histories. Otherwise both go into the result.
    git works beside the replay: a thread reads the log and the changed test files ahead,
    and each chunk's diffs are computed while the next chunk is replayed.
    ``window=False`` parses every version of a test file whole (the reference the windowed
    re-parse is checked against; the output is the same). ``parse_stats``, when given,
    receives how many versions were parsed as a window and whole.
    """
    state = state or EvolutionState()
    parser = make_parser()
    counts: Counter = Counter()
    blobs = _BlobCache()
    commits: list[dict] = []
    tasks: list[dict] = []
    rev_range = f"{state.head}..{head}" if state.head else head
    pairs: list[tuple[str, str]] = []  # (previous kept tree, kept tree) per pending commit
    pending: list[dict] = []            # kept commits waiting for their diffs
    # git computes a chunk's diffs on the other core while the replay goes on; the chunk
    # is collected (commits reach the sink in order) when the next one is sent, or at the end
    differ = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diff-tree")
    in_flight: list[tuple[list[dict], Future]] = []

    def collect() -> None:
        for rows, future in in_flight:
            diffs, diff_counts = future.result()
            counts.update(diff_counts)
            for row, diff in zip(rows, diffs):
                row["production_code_diff"] = diff
            if commit_sink is not None:
                commit_sink(rows)
            else:
                commits.extend(rows)
        in_flight.clear()

    def flush_commits() -> None:
        collect()
        if pending:
            in_flight.append((list(pending), differ.submit(
                _production_diffs_counted, repo, list(pairs), config.max_diff_bytes)))
        pending.clear()
        pairs.clear()
    base_tree = empty_tree(repo)

    index_ = AssertionIndex(parser, window=window)

    fetched: dict[str, bytes | None] = {}   # this commit's test files, read in one round

    def read_python(oid: str) -> bytes | None:
        data = fetched.pop(oid) if oid in fetched else repo.read_blob(oid)
        if data is None:
            counts[Reason.FILE_MISSING_OBJECT] += 1
            return None
        if len(data) > config.max_file_bytes:
            counts[Reason.FILE_TOO_LARGE] += 1
            return None
        reason, _ = decode_python(data)
        if reason:
            counts[reason] += 1
            return None
        return data

    def parse_new(oid: str, path: str):
        """(keys, source, tree) of a file's new version, or None when unusable."""
        data = read_python(oid)
        if data is None:
            index_.forget(path)
            return None
        if b"assert" not in data and b"raises" not in data:
            index_.forget(path)  # no assertion can be in it: skip the parse
            return [], data, None
        tree, keys = index_.parse(path, data)
        if tree is not None and syntax_problem(tree.root_node):
            index_.forget(path)
            counts[Reason.FILE_SYNTAX_ERROR] += 1
            return None
        return keys, data, tree

    def keys_of(oid: str) -> list[Key] | None:
        """Keys of an old blob whose path has no recorded state (rare): full parse."""
        hit = blobs.get(oid)
        if hit is not None:
            return hit
        data = read_python(oid)
        if data is None:
            return None
        tree = parser.parse(data)
        if syntax_problem(tree.root_node):
            return None
        keys = [k for k, _ in file_assertions(tree.root_node)]
        blobs.put(oid, keys)
        return keys

    try:
        for commit, blobs_read in _read_ahead(repo, rev_range):
            index = state.n_commits
            state.n_commits += 1
            if progress is not None:
                progress(1)
            if len(commit.parents) > 1:
                counts[Reason.MERGE_COMMITS] += 1
            if not commit.parents:
                counts[Reason.ROOT_COMMITS] += 1
            if commit.commit_time is None or commit.author_time is None:
                counts[Reason.TIMESTAMP_OUT_OF_RANGE] += 1
            elif state.last_commit_time is not None and commit.commit_time < state.last_commit_time:
                counts[Reason.TIMESTAMP_OUT_OF_ORDER] += 1
            if commit.commit_time is not None:
                state.last_commit_time = commit.commit_time
            commit_events = {"added": 0, "modified": 0}
            commit_tasks: list[dict] = []
            fetched.clear()
            fetched.update(blobs_read)
            for ch in commit.changes:
                _replay_change(ch, state, counts, keys_of, parse_new, index_, commit_events,
                               commit_tasks, repo_id, commit.sha, index, config)
            if not commit_tasks:
                continue
            pairs.append((state.last_kept_tree or base_tree, commit.tree))
            state.last_kept, state.last_kept_tree = commit.sha, commit.tree
            pending.append({
                "repo_id": repo_id, "commit_index": index, "commit_sha": commit.sha,
                "commit_timestamp": commit.commit_time, "author_timestamp": commit.author_time,
                "production_code_diff": "",
                "n_new_assertions": commit_events["added"] + commit_events["modified"],
                "n_added_assertions": commit_events["added"],
                "n_modified_assertions": commit_events["modified"]})
            if task_sink is not None:
                task_sink(commit_tasks)
            else:
                tasks.extend(commit_tasks)
            if len(pending) >= diff_chunk:
                flush_commits()
        flush_commits()
        collect()
    finally:
        differ.shutdown(wait=True, cancel_futures=True)
    if parse_stats is not None:
        parse_stats.update(index_.stats)
    state.head = head
    return EvolutionResult(commits, tasks, counts, state)


def _replay_change(ch: Change, state: EvolutionState, counts: Counter, keys_of, parse_new,
                   index_: AssertionIndex, commit_events: dict, commit_tasks: list[dict], repo_id: str, sha: str,
                   index: int, config: EvolutionMinerConfig) -> None:
    new_is_test = is_test_file(ch.path)
    old_is_test = is_test_file(ch.old_path)
    if not (new_is_test or old_is_test):
        return
    if ch.status == "D" or not new_is_test:
        counts[Reason.TEST_FILE_DELETED if ch.status == "D" else Reason.TEST_FILE_RENAMED_AWAY] += 1
        state.files.pop(ch.old_path, None)
        index_.forget(ch.old_path)
        return
    if "160000" in (ch.new_mode,):
        counts[Reason.FILE_SUBMODULE] += 1
        return
    if ch.new_mode == "120000":
        counts[Reason.FILE_SYMLINK] += 1
        state.files.pop(ch.path, None)
        return
    if ch.status == "R":
        counts[Reason.TEST_FILE_RENAMED] += 1
        index_.move(ch.old_path, ch.path)
    if ch.status == "A" or ch.old_mode in ("000000", "120000", "160000"):
        before: list | None = []  # a new file (or one that was a link or submodule)
    else:
        before = state.files.pop(ch.old_path, None) if ch.status == "R" else state.files.get(ch.path)
        if before is None:  # no recorded state: read the previous version itself
            old = keys_of(ch.old_oid)
            before = [list(k) for k in old] if old is not None else None
    parsed = parse_new(ch.new_oid, ch.path)
    if parsed is None:  # unreadable or broken now: the last good state (if any) stays
        if ch.status == "R" and before:
            state.files[ch.path] = before  # ... and follows the rename
        return
    after_keys, source, tree = parsed
    state.files[ch.path] = [list(k) for k in after_keys]
    if before is None:  # the previous version never parsed: what is new cannot be told
        counts[Reason.EVENTS_UNKNOWN_BEFORE] += 1
        return
    before_keys = [tuple(k) for k in before]
    events = assertion_events(before_keys, after_keys) if before_keys != after_keys else []
    if not events:
        return
    cands = index_.candidates(ch.path, [i for _, i in events])
    seen: set[str] = set()
    for kind, idx in events:
        cand = cands[idx]
        commit_events[kind] += 1
        assert cand.stmt is not None
        comments = comments_within(comments_under(cand.stmt, cand.cut, cand.end), cand.cut, cand.end)
        target = flatten(source, cand.cut, cand.end, comments)
        reason = target_reason(True, target, config.max_target_chars)
        if reason is None and source.find(b"(,", 0, cand.cut) != -1:  # the prefix filter, on bytes
            reason = Reason.PREFIX_PAREN_COMMA
        if reason is None and target in seen:
            reason = Reason.DUPLICATE
        if reason:
            counts[reason] += 1
            continue
        seen.add(target)
        commit_tasks.append(_task_row(repo_id, sha, index, ch.path, source, kind, cand, target))


def round_robin(tasks: Iterable[dict]) -> list[dict]:
    """Order tasks by taking one per (test file, test function) group in turn."""
    groups: dict[tuple, list[dict]] = {}
    for t in tasks:
        groups.setdefault((t["test_file"], t["test_class"], t["test_function"]), []).append(t)
    out, queues = [], [list(g) for g in groups.values()]
    while queues:
        queues = [q for q in queues if q]
        for q in queues:
            out.append(q.pop(0))
    return out


def eval_cap(tasks: list[dict], cap: int, counts: Counter) -> list[dict]:
    """At most ``cap`` tasks of one commit, round-robin over (file, function)."""
    ordered = round_robin(tasks)
    counts[Reason.CAP_COMMIT] += max(0, len(ordered) - cap)
    return ordered[:cap]


def smart_cap(tasks: list[dict], per_file: int, min_chars: int, counts: Counter) -> list[dict]:
    """Training cap of one commit: targets shorter than ``min_chars`` dropped, at most
    ``per_file`` per test file, round-robin over (file, function)."""
    kept: list[dict] = []
    per: Counter = Counter()
    for t in round_robin(tasks):
        if len(t["target"]) < min_chars:
            counts[Reason.TRAIN_SHORT_TARGET] += 1
        elif per[t["test_file"]] >= per_file:
            counts[Reason.TRAIN_CAP_FILE] += 1
        else:
            per[t["test_file"]] += 1
            kept.append(t)
    return kept
