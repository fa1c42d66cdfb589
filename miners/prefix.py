"""Prefixes: the structured static prefix and the whole-file evolution prefix.

Static prefix (SPEC section 4): module-level statements before the test; helper
functions, helper classes and fixtures defined before it; each enclosing class's
header, class attributes and helper methods defined before the test and its
setUp/tearDown-style methods wherever they are (all in source order); then the test
function with its decorators up to the cut. At most
``max_lines`` lines are kept, cut from the top.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from tree_sitter import Node

from .assertions import Candidate

SETUP_METHODS = frozenset({
    "setUp", "tearDown", "setUpClass", "tearDownClass", "asyncSetUp", "asyncTearDown",
    "setup_method", "teardown_method", "setup_class", "teardown_class", "setup", "teardown"})
_DEFS = frozenset({"function_definition", "class_definition"})


def _top(node: Node) -> Node:
    """The definition including its decorators."""
    parent = node.parent
    return parent if parent is not None and parent.type == "decorated_definition" else node


def _unwrap(node: Node) -> Node:
    if node.type == "decorated_definition":
        inner = node.child_by_field_name("definition")
        if inner is not None:
            return inner
    return node


def _name(defn: Node) -> str:
    name = defn.child_by_field_name("name")
    return name.text.decode(errors="replace") if name is not None else ""


def _decorator_name(decorator: Node) -> str:
    """The last name of a decorator's callee: ``fixture`` for ``@pytest.fixture(scope=...)``."""
    expr = next((c for c in decorator.named_children if c.type != "comment"), None)
    if expr is not None and expr.type == "call":
        expr = expr.child_by_field_name("function")
    if expr is not None and expr.type == "attribute":
        expr = expr.child_by_field_name("attribute")
    return expr.text.decode(errors="replace") if expr is not None and expr.type == "identifier" else ""


def _is_fixture(top: Node) -> bool:
    """Decorated with ``fixture`` (``@pytest.fixture``, ``@pytest_asyncio.fixture``, ...);
    ``@pytest.mark.usefixtures(...)`` marks a test, not a fixture."""
    if top.type != "decorated_definition":
        return False
    return any(_decorator_name(d) == "fixture" for d in top.children if d.type == "decorator")


def _is_test_name(name: str) -> bool:
    return name.startswith("test")


def _rows(node: Node) -> range:
    end = node.end_point.row
    if node.end_point.column == 0 and end > node.start_point.row:
        end -= 1
    return range(node.start_point.row, end + 1)


def _class_header_rows(cls_top: Node, cls: Node) -> range:
    body = cls.child_by_field_name("body")
    start = cls_top.start_point.row
    if body is None or body.start_point.row <= cls.start_point.row:
        return range(start, cls.start_point.row + 1)
    return range(start, body.start_point.row)


@dataclass(frozen=True)
class _Member:
    start_byte: int
    def_id: int | None  # id of the class/function definition, if the member is one
    rows: tuple[int, ...]
    when: str  # "before": shown when it precedes the test; "always"; "never"


def _helper_class_rows(top: Node, cls: Node) -> tuple[int, ...]:
    """A module-level helper class (a mixin, say) without its test methods: its header, its
    attributes and its other methods."""
    rows = set(_class_header_rows(top, cls))
    body = cls.child_by_field_name("body")
    for member in (body.named_children if body is not None else []):
        defn = _unwrap(member)
        if defn.type == "function_definition" and _is_test_name(_name(defn)) \
                and not _is_fixture(member):
            continue
        rows.update(_rows(member))
    return tuple(sorted(rows))


def _describe(members: list[Node], in_class: bool) -> list[_Member]:
    """Which statements of a module or class body are prefix context, and when."""
    out = []
    for member in members:
        if member.type == "comment":
            continue
        defn = _unwrap(member)
        if defn.type not in _DEFS:
            out.append(_Member(member.start_byte, None, tuple(_rows(member)), "before"))
            continue
        name = _name(defn)
        rows = tuple(_rows(member))
        if defn.type == "function_definition":
            if in_class and name in SETUP_METHODS:
                when = "always"
            elif _is_fixture(member) or not _is_test_name(name):
                when = "before"
            else:
                when = "never"
        elif not in_class and not name.startswith("Test"):  # module-level helper classes
            when, rows = "before", _helper_class_rows(member, defn)
        else:
            when = "never"
        out.append(_Member(member.start_byte, defn.id, rows, when))
    return out


def line_starts(source: bytes) -> list[int]:
    """Byte offset of the start of every line (rows as tree-sitter counts them)."""
    starts = [0]
    pos = source.find(b"\n")
    while pos != -1:
        starts.append(pos + 1)
        pos = source.find(b"\n", pos + 1)
    return starts


class PrefixBuilder:
    """Structured prefixes for the candidates of one parsed file.

    Body descriptions and per-function context rows are computed once and reused
    for every assertion of the same test function.
    """

    def __init__(self, source: bytes, root: Node, max_lines: int):
        self.source, self.root, self.max_lines = source, root, max_lines
        self.starts = line_starts(source)
        self._bodies: dict[int, list[_Member]] = {}
        self._contexts: dict[int, list[int]] = {}

    def _members(self, body: Node, in_class: bool) -> list[_Member]:
        if body.id not in self._bodies:
            self._bodies[body.id] = _describe(list(body.named_children), in_class)
        return self._bodies[body.id]

    def _add(self, members: list[_Member], before: int, chain: set[int], rows: set[int]) -> None:
        for m in members:
            if m.def_id in chain or m.when == "never":
                continue
            if m.when == "always" or m.start_byte < before:
                rows.update(m.rows)

    def context_rows(self, cand: Candidate) -> list[int]:
        """Rows shown before the test function, in source order."""
        func = cand.function
        assert func is not None, "module-level assertions have no structured prefix"
        if func.id in self._contexts:
            return self._contexts[func.id]
        func_top = _top(func)
        chain = {n.id for n in cand.classes} | {func.id}
        rows: set[int] = set()
        self._add(self._members(self.root, False), func_top.start_byte, chain, rows)
        for cls in cand.classes:
            rows.update(_class_header_rows(_top(cls), cls))
            body = cls.child_by_field_name("body")
            if body is not None:
                self._add(self._members(body, True), func_top.start_byte, chain, rows)
        # A tearDown written after the test moves up: context first, then the test function.
        func_rows = range(func_top.start_point.row, func.end_point.row + 1)
        self._contexts[func.id] = sorted(r for r in rows if r not in func_rows)
        return self._contexts[func.id]

    def prefix(self, cand: Candidate) -> str:
        source, starts = self.source, self.starts
        cut_row = bisect_right(starts, cand.cut) - 1
        func_rows = range(_top(cand.function).start_point.row, cut_row)  # type: ignore[arg-type]
        ordered = [source[starts[r]:starts[r + 1]] for r in (*self.context_rows(cand), *func_rows)]
        ordered.append(source[starts[cut_row]:cand.cut])
        if len(ordered) > self.max_lines:
            ordered = ordered[-self.max_lines:]
        return b"".join(ordered).decode("utf-8", errors="replace")


def file_prefix(source: bytes, cut: int) -> str:
    """Evolution prefix: the whole file up to the cut."""
    return source[:cut].decode("utf-8", errors="replace")
