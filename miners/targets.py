"""Target text and target type (SPEC section 4)."""
from __future__ import annotations

from bisect import bisect_left

import tree_sitter_python
from tree_sitter import Language, Node, Query, QueryCursor

_COMMENTS = Query(Language(tree_sitter_python.language()), "(comment) @c")

_OPENERS = ("(", "[", "{")
_CLOSERS = (")", "]", "}")

_NUMERIC = frozenset({"integer", "float"})
_STRING = frozenset({"string", "concatenated_string"})
_BOOL_NONE = frozenset({"true", "false", "none"})
_VARIABLE = frozenset({"identifier", "attribute"})
_COLLECTION = frozenset({"list", "tuple", "dictionary", "set", "list_comprehension",
                         "dictionary_comprehension", "set_comprehension", "generator_expression"})


def comment_ranges(root: Node) -> list[tuple[int, int]]:
    """Byte ranges of every comment of a parsed file, in order."""
    nodes = QueryCursor(_COMMENTS).captures(root).get("c", [])
    return sorted((n.start_byte, n.end_byte) for n in nodes)


def comments_under(node: Node, start: int | None = None, end: int | None = None
                   ) -> list[tuple[int, int]]:
    """Byte ranges of the comments inside ``node`` (a statement), in order; with ``start``
    and ``end``, only those that overlap that byte range (a query, walked in C)."""
    cursor = QueryCursor(_COMMENTS)
    if start is not None and end is not None:
        cursor.set_byte_range(start, end)
    return sorted((n.start_byte, n.end_byte) for n in cursor.captures(node).get("c", []))


def comments_within(ranges: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    i = bisect_left(ranges, (start, -1))
    out = []
    while i < len(ranges) and ranges[i][0] < end:
        out.append(ranges[i])
        i += 1
    return out


def flatten(source: bytes, start: int, end: int, comments: list[tuple[int, int]]) -> str:
    """Target text of ``source[start:end]``; a multi-line target becomes one line.

    Comments are dropped and each line break with its indentation becomes one space,
    or nothing right after an opening or before a closing bracket. A single-line
    target is returned unchanged (its inner spacing may be inside a string literal).
    """
    pieces, pos = [], start
    for c_start, c_end in comments:
        pieces.append(source[pos:c_start])
        pos = c_end
    pieces.append(source[pos:end])
    text = b"".join(pieces).decode("utf-8", errors="replace")
    if "\n" not in text:
        return text
    lines = [ln.strip() for ln in text.replace("\\\n", "\n").splitlines()]
    lines = [ln for ln in lines if ln]
    out = lines[0] if lines else ""
    for ln in lines[1:]:
        out += ln if out.endswith(_OPENERS) or ln.startswith(_CLOSERS) else " " + ln
    return out


def target_type(node: Node) -> str:
    """One of schema.TARGET_TYPES for the expression the target starts with."""
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    t = node.type
    if t in _NUMERIC:
        return "numeric"
    if t == "unary_operator":
        operand = node.child_by_field_name("argument")
        if operand is not None and operand.type in _NUMERIC:
            return "numeric"
    if t in _STRING:
        return "string"
    if t in _BOOL_NONE:
        return "bool_none"
    if t in _VARIABLE:
        return "variable"
    if t in _COLLECTION:
        return "collection"
    if t == "call":
        return "call"
    return "complex"
