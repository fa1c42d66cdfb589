"""Assertion keys of test files across versions, re-parsing only what an edit touches.

Replaying history parses the same test files over and over with small edits. Each path
keeps its last good version as *units* (module statements, or members of top-level
classes) with their byte spans, owner class and assertion keys. A new version is cut
against the old one (common prefix and suffix, widened to whole lines and to the units
the edit touches), and only that window is parsed, through tree-sitter's included ranges:
the window alone at module level, or, when the edit stays inside one class body, the
class header plus the window. Node offsets stay those of the whole file.

The window's parse is accepted only when it has no error and its structure fits the
place it came from: statements at column 0 at module level; members at the class's
member column, inside that one class. Otherwise (and for a path seen for the first time)
the whole file is parsed. Unchanged units keep their keys. With those checks the keys
equal a full parse's: tested on scripted edits and on real histories
(``benchmarks/bench_evolution_mining.py --check``). Tree-sitter's own incremental parsing
re-read most of a large test file for a one-line edit (80 of 155 ms for a 240 kB file),
so it is not used.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field

from tree_sitter import Node, Parser, Point, QueryCursor, Range, Tree

from .assertions import _QUERY, Candidate, find_candidates
from .static_miner import syntax_problem

Key = tuple[str, str, str]  # (qualified test name, family, normalised statement)

_CLASS = "class_definition"
_FIRST_CODE_LINE = re.compile(rb"(?m)^([ \t]*)[^ \t\r\n#]")


def _class_of(node: Node) -> Node | None:
    if node.type == _CLASS:
        return node
    if node.type == "decorated_definition":
        inner = node.child_by_field_name("definition")
        if inner is not None and inner.type == _CLASS:
            return inner
    return None


@dataclass(slots=True)
class _Unit:
    start: int
    end: int
    owner: str          # name of the enclosing top-level class, "" at module level
    keys: list[Key]


@dataclass(slots=True)
class _Top:
    """A top-level statement: a class with members (``header_end`` set) or one unit."""
    start: int
    end: int
    first: int                 # index of its first unit
    count: int                 # how many units it holds
    header_end: int | None     # classes: start of the first member's line
    member_col: int | None     # classes: column of the members


@dataclass
class _Part:
    """A parse of part of a version: the nodes of units ``lo .. lo + len(nodes)``, and the
    candidates of those of them whose keys were computed (position -> candidates)."""
    tree: Tree
    lo: int
    nodes: list[Node]
    found: dict[int, list[Candidate]] = field(default_factory=dict)


@dataclass
class _Parsed:
    source: bytes
    units: list[_Unit]
    tops: list[_Top]
    parts: list[_Part]         # where the units re-parsed for this version have their nodes
    regular: bool              # layout regular (see _structure): only then are windows used


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


def _line_start(source: bytes, offset: int) -> int:
    return source.rfind(b"\n", 0, offset) + 1


def _line_end(source: bytes, offset: int) -> int:
    """The end (after its newline) of the line holding the byte before ``offset``."""
    if offset == 0 or source[offset - 1:offset] == b"\n":
        return offset
    nl = source.find(b"\n", offset)
    return len(source) if nl == -1 else nl + 1


def _column(source: bytes, offset: int) -> int:
    return offset - _line_start(source, offset)


def normalise_statement(text: bytes) -> str:
    return " ".join(text.decode("utf-8", errors="replace").split())


def _key_of(cand: Candidate) -> Key:
    return (cand.qualname, cand.family, normalise_statement(cand.stmt.text))  # type: ignore[union-attr,return-value]


def keys_from(candidates: list[Candidate]) -> list[Key]:
    return [_key_of(c) for c in candidates if c.qualname is not None and c.stmt is not None]


def _code_children(node: Node) -> list[Node]:
    """Named children that are not comments (comments hold no assertion)."""
    return [c for c in node.named_children if c.type != "comment"]


def _structure(root: Node, source: bytes, first_unit: int = 0
               ) -> tuple[list[_Top], list[tuple[Node, str]], bool]:
    """Top-level statements and units (unit node, owner class name) under ``root``, and
    whether the layout is regular: statements at column 0, each class's members at one
    column. (Tree-sitter accepts a dedent to a column no block opened, without error.)"""
    tops: list[_Top] = []
    units: list[tuple[Node, str]] = []
    regular = True
    for child in _code_children(root):
        regular = regular and child.start_point.column == 0
        cls = _class_of(child)
        body = cls.child_by_field_name("body") if cls is not None else None
        members = _code_children(body) if body is not None else []
        index = first_unit + len(units)
        if cls is None or body is None:
            units.append((child, ""))
            tops.append(_Top(child.start_byte, child.end_byte, index, 1, None, None))
            continue
        name_node = cls.child_by_field_name("name")
        name = name_node.text.decode(errors="replace") if name_node is not None else ""
        units.extend((m, name) for m in members)
        header_end = col = None
        if members and members[0].start_point.row > cls.start_point.row:
            header_end = _line_start(source, members[0].start_byte)
            col = members[0].start_byte - header_end
            regular = regular and all(m.start_point.column == col for m in members)
        tops.append(_Top(child.start_byte, child.end_byte, index, len(members), header_end, col))
    return tops, units, regular


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs [first, last] of sorted indices."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _candidates_in(tree: Tree, nodes: list[Node], todo: list[int]) -> dict[int, list[Candidate]]:
    """Candidates inside the unit nodes ``nodes[i]`` for i in ``todo`` (in key order), one
    query per run of consecutive units."""
    out: dict[int, list[Candidate]] = {}
    starts = [n.start_byte for n in nodes]
    for first, last in _runs(todo):
        cursor = QueryCursor(_QUERY)
        cursor.set_byte_range(nodes[first].start_byte, nodes[last].end_byte)
        for cand in find_candidates(tree.root_node, cursor):
            stmt = cand.stmt
            if stmt is None or cand.qualname is None:
                continue
            i = bisect_right(starts, stmt.start_byte) - 1
            if first <= i <= last and stmt.end_byte <= nodes[i].end_byte:
                out.setdefault(i, []).append(cand)
    return out


def _keys_for(tree: Tree, nodes: list[Node], reuse: dict[tuple[str, bytes], list[Key]] | None = None,
              owners: list[str] | None = None, found: dict[int, list[Candidate]] | None = None
              ) -> list[list[Key]]:
    """Keys of each unit node of ``nodes`` (consecutive units). A unit whose owner class
    and text are in ``reuse`` takes its keys from there (a unit's keys are a function of
    both); the others are queried, and their candidates go into ``found`` (unit position
    -> candidates, in key order) when given."""
    out: list[list[Key] | None] = [None] * len(nodes)
    if reuse and owners is not None:
        for i, n in enumerate(nodes):
            out[i] = reuse.get((owners[i], n.text))
    todo = [i for i, k in enumerate(out) if k is None]
    fresh = _candidates_in(tree, nodes, todo)
    for i in todo:
        out[i] = [_key_of(c) for c in fresh.get(i, [])]
    if found is not None:
        found.update(fresh)
    return out  # type: ignore[return-value]


def _reusable(source: bytes, units: list[_Unit], lo: int, hi: int) -> dict[tuple[str, bytes], list[Key]]:
    return {(u.owner, source[u.start:u.end]): u.keys for u in units[lo:hi]}


def _shift_unit(u: _Unit, delta: int) -> _Unit:
    return _Unit(u.start + delta, u.end + delta, u.owner, u.keys)


def _shift_top(t: _Top, delta: int, unit_delta: int) -> _Top:
    return _Top(t.start + delta, t.end + delta, t.first + unit_delta, t.count,
                None if t.header_end is None else t.header_end + delta, t.member_col)


class AssertionIndex:
    """Per-path parse state, bounded to ``max_paths`` paths and ``max_bytes`` of source
    (LRU). ``window=False`` parses every version whole (the reference behaviour)."""

    def __init__(self, parser: Parser, max_paths: int = 256, max_bytes: int = 4 << 20,
                 window: bool = True):
        self.parser = parser
        self._window_parser = Parser(parser.language)
        self.max_paths, self.max_bytes, self.window = max_paths, max_bytes, window
        self._files: OrderedDict[str, _Parsed] = OrderedDict()
        self._bytes = 0
        # versions re-parsed as windows, parsed whole (of which fallbacks from a window that
        # did not fit), and whole parses made to find candidates outside the last window
        self.stats = {"window": 0, "full": 0, "fallback": 0, "full_for_candidates": 0}

    def forget(self, path: str) -> None:
        parsed = self._files.pop(path, None)
        if parsed is not None:
            self._bytes -= len(parsed.source)

    def move(self, old: str, new: str) -> None:
        if old in self._files:
            self.forget(new)
            self._files[new] = self._files.pop(old)

    def parse(self, path: str, data: bytes) -> tuple[Tree | None, list[Key]]:
        """Tree and assertion keys of ``data`` as the new version of ``path``.

        The tree is the whole file's when it was parsed whole (the caller checks it for
        syntax errors and calls ``forget`` if it rejects it), None when only windows were
        parsed: those parsed without error, and the rest is text of a good version.
        """
        prev = self._files.pop(path, None)
        if prev is not None:
            self._bytes -= len(prev.source)
        parsed = self._reparse(prev, data) if prev is not None and self.window else None
        whole = None
        if parsed is None:
            if prev is not None and prev.regular and self.window:
                self.stats["fallback"] += 1   # the window did not fit: parsed whole
            parsed = self._full(data)
            whole = parsed.parts[0].tree
        self._files[path] = parsed
        self._bytes += len(data)
        while len(self._files) > 1 and (len(self._files) > self.max_paths or self._bytes > self.max_bytes):
            _, evicted = self._files.popitem(last=False)  # least recently used; trees are large
            self._bytes -= len(evicted.source)
        return whole, [k for u in parsed.units for k in u.keys]

    def _full(self, data: bytes, why: str = "full") -> _Parsed:
        self.stats[why] += 1
        tree = self.parser.parse(data)
        tops, found, regular = _structure(tree.root_node, data)
        nodes = [n for n, _ in found]
        part = _Part(tree, 0, nodes)
        keys = _keys_for(tree, nodes, found=part.found)
        units = [_Unit(n.start_byte, n.end_byte, owner, keys[i]) for i, (n, owner) in enumerate(found)]
        return _Parsed(data, units, tops, [part], regular)

    def _reparse(self, prev: _Parsed, data: bytes) -> _Parsed | None:
        """The new version from the old one and a parse of the edited window, or None
        when the window's parse does not fit (the caller then parses the whole file)."""
        old = prev.source
        if not prev.regular or b"\r" in data or b"\r" in old:   # rows: "\n" only
            return None
        start = _common_prefix(old, data)
        suffix = _common_suffix(old, data, min(len(old), len(data)) - start)
        old_end, new_end = len(old) - suffix, len(data) - suffix
        delta = new_end - old_end
        # The edit, widened to whole lines: old[s:e_old] became data[s:e_new].
        s = _line_start(old, start)
        e_old = max(_line_end(old, old_end), s)
        e_new = e_old + delta
        tops = prev.tops
        hit = [i for i, t in enumerate(tops) if t.start < e_old and t.end > s]
        code = _FIRST_CODE_LINE.search(data, s, e_new)
        indented = code is not None and code.end(1) > code.start(1)
        before = [i for i, t in enumerate(tops) if t.end <= s]
        if before and indented and (not hit or tops[hit[0]].start > s):
            hit = [before[-1]] + hit          # the edit may continue the statement above it
        if len(hit) == 1 and tops[hit[0]].header_end is not None \
                and s >= tops[hit[0]].header_end:  # type: ignore[operator]
            return self._reparse_members(prev, data, hit[0], s, e_old, e_new, delta, code)
        return self._reparse_tops(prev, data, hit, s, e_old, e_new, delta)

    def _parse_ranges(self, data: bytes, ranges: list[tuple[int, int]]) -> Tree:
        merged: list[list[int]] = []
        for a, b in ranges:
            if merged and merged[-1][1] >= a:
                merged[-1][1] = max(merged[-1][1], b)
            elif b > a:
                merged.append([a, b])
        # An empty window (whole statements deleted) parses nothing: an empty module.
        self._window_parser.included_ranges = [
            Range(_point(data, a), _point(data, b), a, b) for a, b in merged] \
            or [Range(Point(0, 0), Point(0, 0), 0, 0)]
        return self._window_parser.parse(data)

    def _reparse_tops(self, prev: _Parsed, data: bytes, hit: list[int], s: int, e_old: int,
                      e_new: int, delta: int) -> _Parsed | None:
        old, tops = prev.source, prev.tops
        if hit:
            lo_t, hi_t = min(hit), max(hit) + 1
            w_s = min(s, _line_start(old, tops[lo_t].start))
            w_e_old = max(e_old, _line_end(old, tops[hi_t - 1].end))
        else:
            lo_t = hi_t = sum(1 for t in tops if t.end <= s)
            w_s, w_e_old = s, e_old
        lo_u = tops[lo_t].first if lo_t < len(tops) else len(prev.units)
        hi_u = (tops[hi_t - 1].first + tops[hi_t - 1].count) if hi_t > lo_t else lo_u
        pieces = [(t.start, t.end, t.first, t.first + t.count, t) for t in tops[lo_t:hi_t]]
        found = self._windows(prev, data, pieces, lo_u, w_s, w_e_old, delta, None, 0)
        if found is None:
            return None
        mid, parts, new_tops = found
        unit_delta = len(mid) - (hi_u - lo_u)
        units = prev.units[:lo_u] + mid + [_shift_unit(u, delta) for u in prev.units[hi_u:]]
        out_tops = tops[:lo_t] + new_tops + [_shift_top(t, delta, unit_delta) for t in tops[hi_t:]]
        self.stats["window"] += 1
        return _Parsed(data, units, out_tops, parts, True)

    def _reparse_members(self, prev: _Parsed, data: bytes, ti: int, s: int, e_old: int,
                         e_new: int, delta: int, code) -> _Parsed | None:
        """The edit stays in the body of class ``ti``: parse its header with each run of
        the members the edit touched."""
        old, tops, units = prev.source, prev.tops, prev.units
        top = tops[ti]
        assert top.header_end is not None and top.member_col is not None
        members = range(top.first, top.first + top.count)
        hit = [i for i in members if units[i].start < e_old and units[i].end > s]
        above = [i for i in members if units[i].end <= s]
        deeper = code is not None and code.end(1) - code.start(1) > top.member_col
        if above and deeper and (not hit or units[hit[0]].start > s):
            hit = [above[-1]] + hit           # the edit may continue the member above it
        if hit:
            w_s = min(s, _line_start(old, units[hit[0]].start))
            w_e_old = max(e_old, _line_end(old, units[hit[-1]].end))
            lo_u, hi_u = hit[0], hit[-1] + 1
        else:
            w_s, w_e_old = s, e_old
            lo_u = hi_u = top.first + len(above)
        if w_s < top.header_end:
            return None
        pieces = [(u.start, u.end, i, i + 1, None) for i, u in enumerate(units[lo_u:hi_u], lo_u)]
        found = self._windows(prev, data, pieces, lo_u, w_s, w_e_old, delta,
                              (top.start, top.header_end), top.member_col)
        if found is None:
            return None
        mid, parts, _ = found
        unit_delta = len(mid) - (hi_u - lo_u)
        if top.count + unit_delta <= 0:
            return None                       # the class lost its last member
        out_units = units[:lo_u] + mid + [_shift_unit(u, delta) for u in units[hi_u:]]
        last_end = out_units[top.first + top.count + unit_delta - 1].end
        changed = _Top(top.start, last_end, top.first, top.count + unit_delta, top.header_end,
                       top.member_col)
        out_tops = tops[:ti] + [changed] + [_shift_top(t, delta, unit_delta) for t in tops[ti + 1:]]
        self.stats["window"] += 1
        return _Parsed(data, out_units, out_tops, parts, True)

    def _windows(self, prev: _Parsed, data: bytes, pieces: list[tuple[int, int, int, int, _Top | None]],
                 base: int, w_s: int, w_e_old: int, delta: int, header: tuple[int, int] | None,
                 col: int) -> tuple[list[_Unit], list[_Part], list[_Top]] | None:
        """Units (the first numbered ``base``), parsed parts and top-level statements of
        ``data[w_s:w_e_old + delta]``, which replaced ``old[w_s:w_e_old]``.

        ``pieces`` are the old statements there (start, end, first unit, end unit, the
        top-level statement or None for a class member), at column ``col``; those found unchanged, in order, on whole lines of the new text
        keep their units (shifted). Each stretch between them is parsed on its own (with
        the class ``header`` range when given) and must give statements at ``col``:
        between unchanged statements that begin and end on line boundaries, that is
        what a parse of the whole file gives there.
        """
        old, units = prev.source, prev.units
        w_e_new = w_e_old + delta
        if w_e_new < w_s:
            return None
        stretches: list[tuple[int, int]] = []
        kept: list[tuple[int, int, int, _Top | None]] = []   # (first unit, end unit, shift, top)
        cursor = w_s
        for start, end, u0, u1, top in pieces:
            stop = _line_end(old, end)
            if stop != end + 1 and stop != len(old):
                continue                          # another statement on its last line
            line = _line_start(old, start)
            text = old[line:stop]
            at = data.find(text, cursor, w_e_new)
            if at < 0 or (at > 0 and data[at - 1:at] != b"\n"):
                continue
            after = _FIRST_CODE_LINE.search(data, at + len(text), w_e_new)
            if after is not None and after.end(1) - after.start(1) > col:
                continue                          # the statement goes on in the new text
            stretches.append((cursor, at))
            kept.append((u0, u1, at - line, top))
            cursor = at + len(text)
        stretches.append((cursor, w_e_new))
        reuse = _reusable(old, units, pieces[0][2], pieces[-1][3]) if pieces else {}
        mid: list[_Unit] = []
        parts: list[_Part] = []
        tops: list[_Top] = []
        for i, (a, b) in enumerate(stretches):
            if b > a and _FIRST_CODE_LINE.search(data, a, b) is not None:
                ranges = ([header] if header else []) + [(a, b)]
                tree = self._parse_ranges(data, ranges)
                root = tree.root_node
                if syntax_problem(root) is not None:
                    return None
                new_tops, found, regular = _structure(root, data, len(mid))
                if not regular:
                    return None
                if header is not None:   # one class, the header's, with members at col
                    if len(new_tops) != 1 or new_tops[0].start != header[0] or not found:
                        return None
                    spans = [(n.start_byte, n.end_byte) for n, _ in found]
                else:                    # statements at column 0
                    spans = [(t.start, t.end) for t in new_tops]
                    tops.extend(_shift_top(t, 0, base) for t in new_tops)
                if any(x < a or y > b or _column(data, x) != col for x, y in spans):
                    return None
                nodes = [n for n, _ in found]
                part = _Part(tree, base + len(mid), nodes)
                keys = _keys_for(tree, nodes, reuse, [o for _, o in found], part.found)
                parts.append(part)
                mid.extend(_Unit(n.start_byte, n.end_byte, owner, keys[j])
                           for j, (n, owner) in enumerate(found))
            if i < len(kept):
                u0, u1, shift, top = kept[i]
                if top is not None:
                    tops.append(_shift_top(top, shift, base + len(mid) - u0))
                mid.extend(_shift_unit(u, shift) for u in units[u0:u1])
        return mid, parts, tops

    def candidates(self, path: str, indices: list[int]) -> dict[int, Candidate]:
        """Candidates behind the keys at ``indices`` of the last ``parse`` of ``path``,
        found by querying only the units that hold them (the whole file is parsed again
        when one of them was not re-parsed in that version)."""
        parsed = self._files[path]
        bounds, total = [], 0
        for u in parsed.units:
            bounds.append(total)
            total += len(u.keys)
        wanted = sorted({bisect_right(bounds, i) - 1 for i in indices})
        part_of = {}
        for w in wanted:
            part = next((p for p in parsed.parts if p.lo <= w < p.lo + len(p.nodes)), None)
            if part is None:
                full = self._full(parsed.source, "full_for_candidates")
                # the same units (a trailing comment may end one later in a whole parse)
                assert [(u.start, len(u.keys)) for u in full.units] == \
                    [(u.start, len(u.keys)) for u in parsed.units]
                parsed.parts = full.parts
                return self.candidates(path, indices)
            part_of[w] = part
        out: dict[int, Candidate] = {}
        for part in {id(p): p for p in part_of.values()}.values():
            mine = [w - part.lo for w in wanted if part_of[w] is part]
            todo = [u for u in mine if u not in part.found]   # keys reused: not queried yet
            part.found.update(_candidates_in(part.tree, part.nodes, todo))
            for u in mine:
                for j, cand in enumerate(part.found.get(u, [])):
                    out[bounds[u + part.lo] + j] = cand
        return {i: out[i] for i in indices}
