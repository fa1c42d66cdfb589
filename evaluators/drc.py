"""Dependency-resolved context (DRC): the definitions a task's prefix imports from its own
repository, read from the benchmark's ``context`` table only, compressed to a budget.

1. Imports of the prefix (the test file up to the cut, which rarely parses, so import
   statements are read line by line, parenthesised ones joined): ``import a.b [as x]``,
   ``from a.b import c [as d]``, relative imports (against the test file's package) and
   ``from x import *`` (through ``__all__`` where the module has one).
2. Resolved to files of the repository: a module ``a.b`` is ``a/b.py`` or
   ``a/b/__init__.py`` at the root, under ``src/`` or ``lib/``; a name imported from a
   package that defines it elsewhere is followed through the package's own imports
   (re-exports in ``__init__``), cycles cut.
3. Definitions they name: functions (signature, docstring, body), classes (header,
   docstring, methods' signatures and docstrings), module-level constants; with an AST, or
   for a file that does not parse, a plain-text scan of its top-level ``def``/``class``
   blocks.
4. Compressed to ``budget`` tokens by relevance to the prefix: names the prefix uses most
   first; when they do not fit, bodies go before signatures (a definition falls back to
   its signature and docstring, then to its signature alone, then is left out).

Pure Python, no model: ``count`` measures text in the model's tokens (a tokenizer's
length), characters over 4 by default.
"""
from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

ROOTS = ("", "src/", "lib/")

_IMPORT = re.compile(r"^[ \t]*import[ \t]+(.+)$")
_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(.+)$")


@dataclass
class Definition:
    module: str          # the file it is in
    name: str
    full: str            # the whole definition
    signature: str       # its first line(s), up to the colon, or the assignment
    doc: str = ""        # signature + docstring (+ method signatures for a class)

    def render(self, level: int) -> str:
        """0: whole, 1: signature and docstring, 2: signature alone."""
        return (self.full, self.doc or self.signature, self.signature)[level]


@dataclass
class DRCResult:
    text: str                                   # the context block ("" when nothing resolved)
    n_tokens: int
    names: list[str] = field(default_factory=list)   # definitions included, in order
    files: list[str] = field(default_factory=list)


def module_files(paths: list[str]) -> dict[str, str]:
    """Dotted module name -> file path, for every ``.py`` file under a root of ``ROOTS``."""
    out: dict[str, str] = {}
    for path in sorted(paths):
        if not path.endswith(".py"):
            continue
        for root in ROOTS:
            if root and not path.startswith(root):
                continue
            rel = path[len(root):-3]
            parts = rel.split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts and all(p.isidentifier() for p in parts):
                out.setdefault(".".join(parts), path)
    return out


def import_statements(text: str) -> list[str]:
    """The import statements of a (possibly cut) Python text, parentheses and line
    continuations joined into one line each."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        line = lines[i].split("#", 1)[0].rstrip()
        i += 1
        if not (_IMPORT.match(line) or _FROM.match(line)):
            continue
        while (line.count("(") > line.count(")") or line.endswith("\\")) and i < len(lines):
            line = line.rstrip("\\") + " " + lines[i].split("#", 1)[0].strip()
            i += 1
        out.append(line.replace("(", " ").replace(")", " "))
    return out


def _package_of(test_file: str) -> list[str]:
    """The dotted package of a file (for relative imports): its directories, less a root."""
    parts = test_file[:-3].split("/")[:-1] if test_file.endswith(".py") else []
    for root in ROOTS:
        r = [p for p in root.split("/") if p]
        if r and parts[:len(r)] == r:
            return parts[len(r):]
    return parts


@dataclass
class _Wanted:
    module: str                         # dotted module
    names: list[str] | None             # names imported from it; None: the module itself
    alias: str                          # how the prefix refers to the module (import a.b as x)


def parse_imports(prefix: str, test_file: str, modules: dict[str, str]) -> list[_Wanted]:
    pkg = _package_of(test_file)
    out: list[_Wanted] = []
    for stmt in import_statements(prefix):
        m = _FROM.match(stmt)
        if m:
            dots, mod, names = m.group(1), m.group(2), m.group(3)
            if dots:
                base = pkg[:len(pkg) - (len(dots) - 1)] if len(dots) - 1 <= len(pkg) else []
                mod = ".".join([*base, *([mod] if mod else [])])
            items = [n.strip() for n in names.split(",") if n.strip()]
            if items == ["*"]:
                out.append(_Wanted(mod, ["*"], mod))
                continue
            out.append(_Wanted(mod, [n.split(" as ")[0].strip() for n in items], mod))
            continue
        m = _IMPORT.match(stmt)
        if m:
            for item in m.group(1).split(","):
                item = item.strip()
                if not item:
                    continue
                name, _, alias = item.partition(" as ")
                out.append(_Wanted(name.strip(), None, alias.strip() or name.strip()))
    return out


def _segment(source: str, node: ast.AST) -> str:
    return ast.get_source_segment(source, node) or ""


def _signature(source: str, node: ast.AST) -> str:
    """A def's or class's header (decorators and every line up to the body)."""
    lines = source.split("\n")
    start = min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno]) - 1
    end = node.body[0].lineno - 1                                    # type: ignore[attr-defined]
    head = lines[start:max(end, node.lineno)]
    return "\n".join(head).rstrip()


def _docstring(source: str, node: ast.AST) -> str:
    body = node.body                                                 # type: ignore[attr-defined]
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return _segment(source, body[0])
    return ""


def definitions(path: str, source: str) -> tuple[dict[str, Definition], list[str] | None,
                                                   list[tuple[str, list[str]]]]:
    """(name -> definition, ``__all__`` or None, the file's own ``from X import names``
    as (module as written, names)) of one file; a file that does not parse gets the
    plain-text fallback (and no imports)."""
    try:
        with warnings.catch_warnings():      # a repository's odd literals are not ours to flag
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return _definitions_by_text(path, source), None, []
    defs: dict[str, Definition] = {}
    exported: list[str] | None = None
    reexports: list[tuple[str, list[str]]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            sig = _signature(source, node)
            doc = _docstring(source, node)
            defs[node.name] = Definition(path, node.name, _segment_with_decorators(source, node),
                                         sig, sig + ("\n" + _indent(doc) if doc else ""))
        elif isinstance(node, ast.ClassDef):
            sig = _signature(source, node)
            doc = _docstring(source, node)
            methods = [_signature(source, m) for m in node.body
                       if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
            summary = "\n".join([sig] + ([_indent(doc)] if doc else [])
                                + [_indent(m.strip()) + " ..." for m in methods])
            defs[node.name] = Definition(path, node.name, _segment_with_decorators(source, node),
                                         sig, summary)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    text = _segment(source, node)
                    if t.id == "__all__":
                        try:
                            exported = [str(x) for x in ast.literal_eval(node.value)]  # type: ignore[arg-type]
                        except (ValueError, TypeError, SyntaxError):
                            pass
                        continue
                    first = text.split("\n")[0]
                    defs[t.id] = Definition(path, t.id, text, first, first)
        elif isinstance(node, ast.ImportFrom):
            mod = "." * node.level + (node.module or "")
            reexports.append((mod, [a.asname or a.name for a in node.names]
                              if not any(a.name == "*" for a in node.names) else ["*"]))
            for a in node.names:                      # `from .x import y as z` names z
                if a.asname and a.name != "*":
                    reexports[-1][1][reexports[-1][1].index(a.asname)] = f"{a.name} as {a.asname}"
    return defs, exported, reexports


def _segment_with_decorators(source: str, node: ast.AST) -> str:
    lines = source.split("\n")
    start = min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno]) - 1
    return "\n".join(lines[start:node.end_lineno])                  # type: ignore[attr-defined]


def _indent(text: str) -> str:
    return "\n".join("    " + x.strip() if x.strip() else x for x in text.split("\n"))


_TOP = re.compile(r"^(?:async[ \t]+)?(def|class)[ \t]+(\w+)", re.M)


def _definitions_by_text(path: str, source: str) -> dict[str, Definition]:
    """Top-level ``def``/``class`` blocks of a file that does not parse: from the header
    to the next line at column 0."""
    out: dict[str, Definition] = {}
    lines = source.split("\n")
    for m in _TOP.finditer(source):
        start = source.count("\n", 0, m.start())
        end = start + 1
        while end < len(lines) and (not lines[end].strip() or lines[end][:1] in " \t"):
            end += 1
        block = "\n".join(lines[start:end]).rstrip()
        out[m.group(2)] = Definition(path, m.group(2), block, lines[start].rstrip(),
                                     lines[start].rstrip())
    return out


class Resolver:
    """The definitions of one repository's context, parsed once per file."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.modules = module_files(list(files))
        self._parsed: dict[str, tuple[dict[str, Definition], list[str] | None, list]] = {}

    def parsed(self, module: str):
        if module not in self._parsed:
            path = self.modules[module]
            self._parsed[module] = definitions(path, self.files[path])
        return self._parsed[module]

    def lookup(self, module: str, name: str, seen: set | None = None) -> list[Definition]:
        """The definition ``name`` of ``module``: its own, else one its own imports bring
        in (``from .x import name`` in a package's ``__init__``: a re-export), followed
        through further modules with cycles cut."""
        seen = seen if seen is not None else set()
        if (module, name) in seen or module not in self.modules:
            return []
        seen.add((module, name))
        defs, _, reexports = self.parsed(module)
        if name in defs:
            return [defs[name]]
        is_pkg = self.modules[module].endswith("__init__.py")
        pkg = module.split(".") if is_pkg else module.split(".")[:-1]
        for written, names in reexports:
            dots = len(written) - len(written.lstrip("."))
            target = written.lstrip(".")
            if dots:
                base = pkg[:len(pkg) - (dots - 1)] if dots - 1 <= len(pkg) else []
                target = ".".join([*base, *([target] if target else [])])
            for n in names:
                original, _, alias = n.partition(" as ")
                if (alias or original) == name or original == "*":
                    found = self.lookup(target, original if original != "*" else name, seen)
                    if found:
                        return found
        return []

    def public(self, module: str) -> list[str]:
        defs, exported, _ = self.parsed(module)
        return exported if exported is not None else [n for n in defs if not n.startswith("_")]

    def candidates(self, prefix: str, test_file: str) -> list[tuple[Definition, int]]:
        """Every definition the prefix's imports name, with how often the prefix uses it."""
        found: dict[tuple[str, str], tuple[Definition, int]] = {}

        def add(d: Definition, uses: int) -> None:
            key = (d.module, d.name)
            if key not in found or found[key][1] < uses:
                found[key] = (d, uses)

        for want in parse_imports(prefix, test_file, self.modules):
            if want.names is None:                    # import a.b [as x]: the names used as x.N
                if want.module not in self.modules:
                    continue
                for n in set(re.findall(rf"\b{re.escape(want.alias)}\.(\w+)", prefix)):
                    for d in self.lookup(want.module, n):
                        add(d, _uses(prefix, n))
                continue
            names = want.names
            if names == ["*"]:
                if want.module not in self.modules:
                    continue
                names = self.public(want.module)
            for n in names:
                if f"{want.module}.{n}" in self.modules and not self.lookup(want.module, n):
                    sub = f"{want.module}.{n}"        # from pkg import submodule: names used as n.X
                    for x in set(re.findall(rf"\b{re.escape(n)}\.(\w+)", prefix)):
                        for d in self.lookup(sub, x):
                            add(d, _uses(prefix, x))
                    continue
                for d in self.lookup(want.module, n):
                    add(d, _uses(prefix, n))
        return sorted(found.values(), key=lambda x: (-x[1], x[0].module, x[0].name))


def _uses(prefix: str, name: str) -> int:
    return len(re.findall(rf"\b{re.escape(name)}\b", prefix))


def _chars(text: str) -> int:
    return (len(text) + 3) // 4


def resolve(prefix: str, test_file: str, resolver: Resolver, budget: int = 4096,
            count: Callable[[str], int] = _chars, estimate: bool = True) -> DRCResult:
    """The DRC block of one task within ``budget`` tokens (``count``). ``estimate=False``:
    the block tokenised after every cut (the reference the estimate is measured against)."""
    ranked = [d for d, _ in resolver.candidates(prefix, test_file)]
    if not ranked or budget <= 0:
        return DRCResult("", 0)
    levels = [0] * len(ranked)                   # 0 whole, 1 doc, 2 signature, 3 left out

    def text() -> str:
        parts: list[str] = []
        last_file = None
        for d, lv in zip(ranked, levels):
            if lv == 3:
                continue
            if d.module != last_file:
                parts.append(f"# {d.module}")
                last_file = d.module
            parts.append(d.render(lv))
        return "\n".join(parts) + "\n" if parts else ""

    parts: dict[tuple[int, int], int] = {}

    def part(i: int, lv: int) -> int:
        """Tokens of one definition at one level (0 once left out)."""
        if lv == 3:
            return 0
        if (i, lv) not in parts:
            parts[(i, lv)] = count(ranked[i].render(lv))
        return parts[(i, lv)]

    # over budget: the least relevant definition gives up its body first, then its
    # docstring, then its place; bodies of every definition go before any signature.
    # First with the block's cost updated by each definition's own tokens (the block is
    # tokenised once, not after every cut), then exactly, from where that stopped.
    for exact in ((False, True) if estimate else (True,)):
        cost = count(text())
        for step in (1, 2, 3):
            for i in reversed(range(len(ranked))):
                if cost <= budget:
                    break
                if levels[i] < step:
                    before = part(i, levels[i])
                    levels[i] = step
                    cost = count(text()) if exact else cost - before + part(i, step)
    out = text()
    kept = [d for d, lv in zip(ranked, levels) if lv < 3]
    return DRCResult(out, count(out) if out else 0, [d.name for d in kept],
                     sorted({d.module for d in kept}))
