"""Assertion keys of test files across versions, with incremental re-parsing.

Replaying history parses the same test files over and over with small edits. Here
each path keeps its last good (source, tree, units); a new version is parsed with
tree-sitter's incremental parser from one edit (common prefix and suffix), and the
assertion keys are recomputed only for top-level units (module statements, or
members of top-level classes) whose text or owner class changed.
The result is, by construction and by test, the same as a full parse.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass

from tree_sitter import Node, Parser, Point, QueryCursor, Tree

from .assertions import _QUERY, Candidate, find_candidates

Key = tuple[str, str, str]  # (qualified test name, family, normalised statement)

_CLASS = "class_definition"


def _class_of(node: Node) -> Node | None:
    if node.type == _CLASS:
        return node
    if node.type == "decorated_definition":
        inner = node.child_by_field_name("definition")
        if inner is not None and inner.type == _CLASS:
            return inner
    return None


@dataclass
class _Unit:
    start: int
    end: int
    owner: str          # name of the enclosing top-level class, "" at module level
    keys: list[Key]


@dataclass
class _Parsed:
    source: bytes
    tree: Tree
    units: list[_Unit]


def _common_prefix(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # invariant: a[:lo] == b[:lo]
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:len(a) - lo] == b[len(b) - mid:len(b) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(source: bytes, offset: int) -> Point:
    row = source.count(b"\n", 0, offset)
    line_start = source.rfind(b"\n", 0, offset) + 1
    return Point(row, offset - line_start)


def normalise_statement(text: bytes) -> str:
    return " ".join(text.decode("utf-8", errors="replace").split())


def keys_from(candidates: list[Candidate]) -> list[Key]:
    out = []
    for cand in candidates:
        qual = cand.qualname
        if qual is not None and cand.stmt is not None:
            out.append((qual, cand.family, normalise_statement(cand.stmt.text)))
    return out


def _unit_nodes(root: Node) -> list[tuple[Node, str, Node | None]]:
    """(unit node, owner class name, owner class node) for every unit of a module."""
    out = []
    for child in root.named_children:
        cls = _class_of(child)
        body = cls.child_by_field_name("body") if cls is not None else None
        if cls is None or body is None:
            out.append((child, "", None))
            continue
        name_node = cls.child_by_field_name("name")
        name = name_node.text.decode(errors="replace") if name_node is not None else ""
        for member in body.named_children:
            out.append((member, name, cls))
    return out


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs [first, last] of sorted indices."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _keys_for(tree: Tree, nodes: list[Node], wanted: list[int]) -> dict[int, list[Key]]:
    """Keys of the units ``nodes[i]`` for i in ``wanted``: one query per contiguous run."""
    out: dict[int, list[Key]] = {i: [] for i in wanted}
    starts = [n.start_byte for n in nodes]
    for first, last in _runs(wanted):
        cursor = QueryCursor(_QUERY)
        cursor.set_byte_range(nodes[first].start_byte, nodes[last].end_byte)
        for cand in find_candidates(tree.root_node, cursor):
            stmt = cand.stmt
            if stmt is None:
                continue
            i = bisect_right(starts, stmt.start_byte) - 1
            if first <= i <= last and stmt.end_byte <= nodes[i].end_byte and cand.qualname is not None:
                out[i].extend(keys_from([cand]))
    return out


class AssertionIndex:
    """Per-path incremental parse state, bounded to ``max_paths`` paths (LRU)."""

    def __init__(self, parser: Parser, max_paths: int = 256, max_bytes: int = 4 << 20):
        self.parser = parser
        self.max_paths, self.max_bytes = max_paths, max_bytes
        self._files: OrderedDict[str, _Parsed] = OrderedDict()
        self._bytes = 0

    def forget(self, path: str) -> None:
        parsed = self._files.pop(path, None)
        if parsed is not None:
            self._bytes -= len(parsed.source)

    def move(self, old: str, new: str) -> None:
        if old in self._files:
            self.forget(new)
            self._files[new] = self._files.pop(old)

    def parse(self, path: str, data: bytes) -> tuple[Tree, list[Key]]:
        """Tree and assertion keys of ``data`` as the new version of ``path``.

        The caller checks the tree for syntax errors and calls ``forget`` if it rejects it.
        """
        prev = self._files.pop(path, None)
        if prev is not None:
            self._bytes -= len(prev.source)
        if prev is None:
            tree = self.parser.parse(data)
            found = _unit_nodes(tree.root_node)
            nodes = [n for n, _, _ in found]
            keys = _keys_for(tree, nodes, list(range(len(nodes))))
            units = [_Unit(n.start_byte, n.end_byte, owner, keys[i])
                     for i, (n, owner, _) in enumerate(found)]
        else:
            tree, units = self._reparse(prev, data)
        self._files[path] = _Parsed(data, tree, units)
        self._bytes += len(data)
        while len(self._files) > 1 and (len(self._files) > self.max_paths or self._bytes > self.max_bytes):
            _, evicted = self._files.popitem(last=False)  # least recently used; trees are large
            self._bytes -= len(evicted.source)
        return tree, [k for u in units for k in u.keys]

    def _reparse(self, prev: _Parsed, data: bytes) -> tuple[Tree, list[_Unit]]:
        old = prev.source
        start = _common_prefix(old, data)
        suffix = _common_suffix(old, data, min(len(old), len(data)) - start)
        old_end, new_end = len(old) - suffix, len(data) - suffix
        old_tree = prev.tree.copy()
        old_tree.edit(start_byte=start, old_end_byte=old_end, new_end_byte=new_end,
                      start_point=_point(old, start), old_end_point=_point(old, old_end),
                      new_end_point=_point(data, new_end))
        tree = self.parser.parse(data, old_tree)
        # A unit's keys are a function of its owner class and its text: reuse them for
        # every unit whose text is unchanged, wherever the edits were.
        reusable = {(u.owner, old[u.start:u.end]): u.keys for u in prev.units}
        found = _unit_nodes(tree.root_node)
        keys: list[list[Key] | None] = [reusable.get((owner, data[n.start_byte:n.end_byte]))
                                        for n, owner, _ in found]
        nodes = [n for n, _, _ in found]
        fresh = _keys_for(tree, nodes, [i for i, k in enumerate(keys) if k is None])
        units = [_Unit(n.start_byte, n.end_byte, owner, keys[i] if keys[i] is not None else fresh[i])
                 for i, (n, owner, _) in enumerate(found)]
        return tree, units

    def candidates(self, path: str, indices: list[int]) -> dict[int, Candidate]:
        """Candidates behind the keys at ``indices`` of the last ``parse`` of ``path``,
        found by querying only the units that hold them."""
        parsed = self._files[path]
        nodes = [n for n, _, _ in _unit_nodes(parsed.tree.root_node)]
        bounds, total = [], 0
        for u in parsed.units:
            bounds.append(total)
            total += len(u.keys)
        wanted = sorted({bisect_right(bounds, i) - 1 for i in indices})
        out: dict[int, Candidate] = {}
        starts = [n.start_byte for n in nodes]
        for first, last in _runs(wanted):
            cursor = QueryCursor(_QUERY)
            cursor.set_byte_range(nodes[first].start_byte, nodes[last].end_byte)
            seen: dict[int, int] = {}
            for cand in find_candidates(parsed.tree.root_node, cursor):
                stmt = cand.stmt
                if stmt is None or cand.qualname is None:
                    continue
                u = bisect_right(starts, stmt.start_byte) - 1
                if not (first <= u <= last) or stmt.end_byte > nodes[u].end_byte:
                    continue
                k = bounds[u] + seen.get(u, 0)
                seen[u] = seen.get(u, 0) + 1
                out[k] = cand
        return {i: out[i] for i in indices}
