"""Finding assertion tasks in a tree-sitter-python syntax tree (SPEC section 4).

A ``Candidate`` marks where the prefix is cut (``cut``, a byte offset) and where the
target ends (``end``); ``main`` is the expression whose kind gives the target type.
The scope chain (enclosing classes and functions) feeds the structured prefix.
"""
from __future__ import annotations

from functools import cached_property
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor

UNITTEST_RAISES = frozenset({"assertRaises", "assertRaisesRegex", "assertRaisesRegexp",
                             "assertWarns", "assertWarnsRegex"})
UNITTEST_ONE_ARG = frozenset({"assertTrue", "assertFalse", "assertIsNone", "assertIsNotNone",
                              "assert_", "failUnless", "failIf"})
MOCK_ASSERTS = frozenset({
    "assert_called", "assert_called_once", "assert_called_with", "assert_called_once_with",
    "assert_any_call", "assert_has_calls", "assert_not_called", "assert_awaited",
    "assert_awaited_once", "assert_awaited_with", "assert_awaited_once_with",
    "assert_any_await", "assert_has_awaits", "assert_not_awaited"})
# Nodes that are never an operand or an argument: comments and backslash continuations.
_EXTRAS = frozenset({"comment", "line_continuation"})
_NOT_ARGS = frozenset({"keyword_argument", "dictionary_splat"}) | _EXTRAS
_SCOPES = frozenset({"function_definition", "class_definition"})


def _build_query():
    import tree_sitter_python
    from tree_sitter import Language, Query
    # Only calls named assert*/raises are captured (filtered inside tree-sitter, not in Python).
    return Query(Language(tree_sitter_python.language()), """
        (assert_statement) @assert
        (call function: [(identifier) @name (attribute attribute: (identifier) @name)]
              (#match? @name "^(assert|raises$)")) @call""")


_QUERY = _build_query()


@dataclass(frozen=True)
class Candidate:
    family: str           # one of schema.ASSERTION_TYPES
    cut: int              # byte offset where the prefix ends and the target starts
    end: int              # byte offset where the target ends
    main: Node            # expression that decides the target type
    scopes: tuple[Node, ...] = ()  # enclosing class/function definitions, outermost first
    stmt: Node | None = None  # the whole assertion: the assert statement or the call

    @cached_property
    def qualname(self) -> str | None:
        """Dotted classes and function of the enclosing test, or None at module level."""
        func = self.function
        if func is None:
            return None
        names = [s.child_by_field_name("name") for s in (*self.classes, func)]
        return ".".join(n.text.decode(errors="replace") for n in names if n is not None)

    @property
    def function(self) -> Node | None:
        """Outermost enclosing function: the test (or helper) the assertion belongs to."""
        return next((s for s in self.scopes if s.type == "function_definition"), None)

    @property
    def classes(self) -> tuple[Node, ...]:
        """Classes enclosing that function (outermost first)."""
        out = []
        for s in self.scopes:
            if s.type == "function_definition":
                break
            out.append(s)
        return tuple(out)


def _named(node: Node) -> list[Node]:
    return [c for c in node.named_children if c.type not in _EXTRAS]


def _callee_name(call: Node) -> tuple[str | None, Node | None]:
    """Last identifier of the called expression, and the object it is looked up on."""
    fn = call.child_by_field_name("function")
    if fn is None:
        return None, None
    if fn.type == "identifier":
        return fn.text.decode(), None
    if fn.type == "attribute":
        attr = fn.child_by_field_name("attribute")
        return (attr.text.decode() if attr is not None else None), fn.child_by_field_name("object")
    return None, None


def _args(call: Node) -> tuple[Node | None, list[Node]]:
    arglist = call.child_by_field_name("arguments")
    if arglist is None or arglist.type != "argument_list":
        return None, []
    return arglist, [a for a in arglist.named_children if a.type not in _NOT_ARGS]


def _from_arg(family: str, arglist: Node, args: list[Node], index: int) -> Candidate | None:
    if len(args) <= index:
        return None
    arg = args[index]
    return Candidate(family, arg.start_byte, arglist.end_byte, arg)


def _whole_args(family: str, call: Node) -> Candidate | None:
    arglist, args = _args(call)
    if arglist is None or not _named(arglist):
        return None
    first = next((a for a in arglist.named_children if a.type not in _EXTRAS), None)
    if first is None:
        return None
    main = args[0] if args else first
    return Candidate(family, first.start_byte, arglist.end_byte, main)


def _is_approx(node: Node) -> bool:
    return node.type == "call" and _callee_name(node)[0] == "approx"


def candidate_for_assert(stmt: Node) -> Candidate | None:
    """Bare ``assert`` with a comparison: target is the first comparator (or approx args)."""
    exprs = _named(stmt)
    if not exprs:
        return None
    expr = exprs[0]
    while expr.type == "parenthesized_expression" and len(_named(expr)) == 1:
        expr = _named(expr)[0]
    if expr.type != "comparison_operator":
        return None
    operands = _named(expr)
    if len(operands) < 2:
        return None
    comparator = operands[1]
    if _is_approx(comparator):
        return _whole_args("approx", comparator)
    return Candidate("assert", comparator.start_byte, comparator.end_byte, comparator)


def candidate_for_call(call: Node) -> Candidate | None:
    """unittest ``self.assert*``, ``pytest.raises``, and numpy-style ``assert_*`` calls."""
    name, obj = _callee_name(call)
    if not name:
        return None
    obj_text = obj.text.decode(errors="replace") if obj is not None else ""
    if name == "raises" and obj_text in ("pytest", ""):
        return _whole_args("raises", call)
    if obj_text in ("self", "cls") and name.startswith("assert") and not name.startswith("assert_"):
        if name in UNITTEST_RAISES:
            return _whole_args("raises", call)
        arglist, args = _args(call)
        if arglist is None:
            return None
        if name in UNITTEST_ONE_ARG or len(args) < 2:
            return _from_arg("unittest", arglist, args, 0)
        return _from_arg("unittest", arglist, args, 1)
    if name.startswith("assert_") and name not in MOCK_ASSERTS and "mock" not in obj_text.lower():
        arglist, args = _args(call)
        if arglist is None:
            return None
        return _from_arg("numpy", arglist, args, 1 if len(args) >= 2 else 0)
    return None


def _scopes_of(node: Node) -> tuple[Node, ...]:
    chain = []
    parent = node.parent
    while parent is not None:
        if parent.type in _SCOPES:
            chain.append(parent)
        parent = parent.parent
    return tuple(reversed(chain))


def find_candidates(root: Node, cursor: QueryCursor | None = None) -> list[Candidate]:
    """All assertion candidates of a module (or of ``cursor``'s byte range), in source order.

    At most one task per ``assert`` statement (calls inside it are never tasks), and a
    qualifying call hides the calls in its arguments.
    """
    captures = (cursor or QueryCursor(_QUERY)).captures(root)
    nodes = sorted(captures.get("assert", []) + captures.get("call", []),
                   key=lambda n: (n.start_byte, -n.end_byte))
    found: list[Candidate] = []
    blocked_until = -1
    for node in nodes:
        if node.start_byte < blocked_until:
            continue
        if node.type == "assert_statement":
            blocked_until = node.end_byte
            cand = candidate_for_assert(node)
        else:
            cand = candidate_for_call(node) if _maybe_assertion_call(node) else None
            if cand is not None:
                blocked_until = node.end_byte
        if cand is not None:
            cand = Candidate(cand.family, cand.cut, cand.end, cand.main, _scopes_of(node), node)
            found.append(cand)
    return found


def _maybe_assertion_call(call: Node) -> bool:
    name, _ = _callee_name(call)
    return bool(name) and (name.startswith("assert") or name == "raises")
