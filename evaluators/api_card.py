"""A repository's API inventory as a short text card: what a test of the repository names
that its prefix may not (public functions with their signatures, classes with their
public methods, exception classes, module-level constants) and the usage examples its
docstrings and documents show (doctest ``>>>`` lines and their output).

Read from the benchmark's ``context`` table only (its non-test ``.py``, ``.md`` and
``.rst`` files). Definitions come from ``drc.definitions`` (an AST, with a plain-text
fallback for a file that does not parse). The card is cut to ``max_chars`` by taking one
entry of each section in turn (exceptions, constants, functions, classes, examples; each
in path order, the package's files before docs/, examples/ and the like; one line per
entry), so a large repository keeps some of every kind. Deterministic:
the same files give the same card.
"""
from __future__ import annotations

import ast
import re
import warnings

from .drc import definitions, module_files

_EXCEPTION_BASE = re.compile(r"(Error|Exception|Warning)\b")
_DOCTEST = re.compile(r"^[ \t]*>>> ?(.*)$")
_SPACES = re.compile(r"\s+")
LINE_CHARS = 160        # an entry longer than this is cut (a huge default, a long literal)
# files under these top-level folders come after the package's own (docs/conf.py, demos)
AUXILIARY = frozenset({"doc", "docs", "example", "examples", "benchmark", "benchmarks",
                       "bench", "scripts", "tools", "demo", "demos"})


def _order(path: str) -> tuple[bool, str]:
    return (path.split("/", 1)[0].lower() in AUXILIARY, path)


def _one_line(text: str) -> str:
    line = _SPACES.sub(" ", text).strip().rstrip(":").strip()
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 3] + "..."


def _header(signature: str) -> str:
    """A def's or class's header without its decorators, on one line."""
    lines = [re.sub(r"#.*$", "", x) for x in signature.split("\n")]   # comments before the body
    start = next((i for i, x in enumerate(lines) if re.match(r"\s*(async\s+)?(def|class)\b", x)), 0)
    return _one_line(" ".join(lines[start:]))


def _is_exception(header: str) -> bool:
    m = re.match(r"class\s+(\w+)\s*(?:\((.*)\))?", header)
    return bool(m) and bool(_EXCEPTION_BASE.search(m.group(1)) or
                            _EXCEPTION_BASE.search(m.group(2) or ""))


def _methods(full: str) -> list[str]:
    """The public method names of a class's source, in order."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            node = ast.parse(full).body[0]
    except (SyntaxError, ValueError, IndexError):
        return re.findall(r"^\s+def\s+([A-Za-z]\w*)", full, re.M)
    return [m.name for m in getattr(node, "body", [])
            if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (not m.name.startswith("_") or m.name == "__init__")]


def doctest_examples(text: str) -> list[str]:
    """``>>> expr`` lines with the output line after each (``expr -> output``)."""
    out, lines = [], text.split("\n")
    for i, line in enumerate(lines):
        m = _DOCTEST.match(line)
        if not m or not m.group(1).strip():
            continue
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        shown = "" if not nxt or nxt.startswith((">>>", "...")) else f" -> {nxt}"
        out.append(_one_line(f">>> {m.group(1)}{shown}"))
    return out


def card_sections(files: dict[str, str]) -> dict[str, list[str]]:
    """The card's entries of a repository's files (path -> content), by section, each in
    path order (the package's files first)."""
    modules = {path: name for name, path in module_files(list(files)).items()}
    sections: dict[str, list[str]] = {"exceptions": [], "constants": [], "functions": [],
                                      "classes": [], "examples": []}
    seen_examples: set[str] = set()
    for path in sorted(files, key=_order):
        text = files[path]
        if path.endswith(".py"):
            where = modules.get(path, path[:-3].replace("/", "."))
            defs, exported, _ = definitions(path, text)
            public = set(exported) if exported is not None else None
            for name, d in defs.items():
                if name.startswith("_") or (public is not None and name not in public):
                    continue
                if d.signature.lstrip().startswith(("def ", "async def ", "class ", "@")):
                    header = _header(d.signature)
                    if header.startswith("class"):
                        if _is_exception(header):
                            sections["exceptions"].append(f"{where}: {header}")
                        else:
                            methods = _methods(d.full)
                            sections["classes"].append(
                                f"{where}: {header}" + (f": {', '.join(methods)}" if methods else ""))
                    else:
                        sections["functions"].append(f"{where}: {header}")
                elif name.isupper():
                    sections["constants"].append(f"{where}: {_one_line(d.signature)}")
        if path.endswith((".py", ".md", ".rst")):
            for ex in doctest_examples(text):
                if ex not in seen_examples:
                    seen_examples.add(ex)
                    sections["examples"].append(ex)
    return sections


def render_card(sections: dict[str, list[str]], budget: int, cost=None, title: str = "") -> str:
    """The card within ``budget`` (``cost(line)`` each, with its line break; default: its
    characters): one entry of each section in turn, so some of every kind is kept.
    ``""`` when not even the title fits."""
    cost = cost or (lambda line: len(line) + 1)
    head = f"# API of {title}" if title else "# API"
    used = cost(head)
    if used > budget:
        return ""
    kept: dict[str, list[str]] = {k: [] for k in sections}
    depth, full = 0, False
    while not full and any(depth < len(v) for v in sections.values()):
        for name, entries in sections.items():
            if depth >= len(entries):
                continue
            need = cost(entries[depth]) + (0 if kept[name] else cost(f"## {name}"))
            if used + need > budget:
                full = True
                break
            kept[name].append(entries[depth])
            used += need
        depth += 1
    out = [head]
    for name, entries in kept.items():
        if entries:
            out += [f"## {name}", *entries]
    return "\n".join(out) + "\n"


def api_card(files: dict[str, str], max_chars: int = 6000, title: str = "") -> str:
    """The card of a repository's files (path -> content), at most ``max_chars``."""
    return render_card(card_sections(files), max_chars, title=title)
