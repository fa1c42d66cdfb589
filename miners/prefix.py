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


def _is_fixture(top: Node) -> bool:
    if top.type != "decorated_definition":
        return False
    return any(b"fixture" in d.text for d in top.children if d.type == "decorator")


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


def _helper_rows(members: list[Node], before: int, rows: set[int], in_class: bool,
                 chain: set[int]) -> None:
    """Add rows of helper statements among ``members`` (module or class body)."""
    for member in members:
        if member.type == "comment":
            continue
        defn = _unwrap(member)
        if defn.id in chain:
            continue
        starts_before = member.start_byte < before
        if defn.type not in _DEFS:
            if starts_before:
                rows.update(_rows(member))
            continue
        name = _name(defn)
        if defn.type == "function_definition":
            if in_class and name in SETUP_METHODS:
                rows.update(_rows(member))
            elif starts_before and (_is_fixture(member) or not name.startswith("test")):
                rows.update(_rows(member))
        elif starts_before and not name.startswith("Test") and not in_class:
            rows.update(_rows(member))  # helper class at module level


def line_starts(source: bytes) -> list[int]:
    """Byte offset of the start of every line (rows as tree-sitter counts them)."""
    starts = [0]
    pos = source.find(b"\n")
    while pos != -1:
        starts.append(pos + 1)
        pos = source.find(b"\n", pos + 1)
    return starts


def structured_prefix(source: bytes, starts: list[int], root: Node, cand: Candidate,
                      max_lines: int) -> str:
    func = cand.function
    assert func is not None, "module-level assertions have no structured prefix"
    func_top = _top(func)
    chain = {n.id for n in cand.classes} | {func.id}
    rows: set[int] = set()
    _helper_rows(list(root.named_children), func_top.start_byte, rows, False, chain)
    for cls in cand.classes:
        cls_top = _top(cls)
        rows.update(_class_header_rows(cls_top, cls))
        body = cls.child_by_field_name("body")
        if body is not None:
            _helper_rows(list(body.named_children), func_top.start_byte, rows, True, chain)
    cut_row = bisect_right(starts, cand.cut) - 1
    func_rows = range(func_top.start_point.row, cut_row)
    # Context first (a tearDown written after the test moves up), then the test function.
    context = sorted(r for r in rows if r not in func_rows and r != cut_row)
    ordered = [source[starts[r]:starts[r + 1]] for r in (*context, *func_rows)]
    ordered.append(source[starts[cut_row]:cand.cut])
    if len(ordered) > max_lines:
        ordered = ordered[-max_lines:]
    return b"".join(ordered).decode("utf-8", errors="replace")



def file_prefix(source: bytes, cut: int) -> str:
    """Evolution prefix: the whole file up to the cut."""
    return source[:cut].decode("utf-8", errors="replace")
