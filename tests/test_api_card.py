"""The API inventory card on a hand-made repository: each kind of entry, ``__all__``,
private names, doctest examples from docstrings and documents, a file that does not
parse, the package before its docs, and the budget cut."""
from __future__ import annotations

from evaluators.api_card import api_card, doctest_examples

FILES = {
    "pkg/__init__.py": "from .core import parse, Parser\n__all__ = ['parse', 'Parser', 'LIMIT']\n"
                       "LIMIT = 10\n_SECRET = 1\ndef hidden():\n    pass\n",
    "pkg/core.py": (
        "import functools\n"
        "MAX_SIZE = 1024\n"
        "default_name = 'x'\n"
        "class ParseError(ValueError):\n    '''Bad input.'''\n"
        "class Parser:\n    def __init__(self, text):\n        self.text = text\n"
        "    def feed(self, data):\n        pass\n    def _private(self):\n        pass\n"
        "@functools.lru_cache()\n"
        "def parse(text: str,  # the source\n          strict=False) -> 'Parser':\n"
        "    '''Parse.\n\n    >>> parse('a').text\n    'a'\n    '''\n    return Parser(text)\n"
        "def _helper():\n    pass\n"),
    "pkg/broken.py": "def still_listed(a, b):\n    return a +\n",
    "docs/conf.py": "def setup(app):\n    pass\n",
    "README.md": "Usage:\n\n    >>> from pkg import parse\n    >>> parse('b').text\n    'b'\n",
}


def test_the_card_lists_each_kind_of_public_name_and_the_examples():
    card = api_card(FILES, 6000, "me/pkg")
    lines = card.splitlines()
    assert lines[0] == "# API of me/pkg"
    assert "pkg.core: class ParseError(ValueError)" in lines
    assert "pkg.core: MAX_SIZE = 1024" in lines and "pkg: LIMIT = 10" in lines
    assert "pkg.core: def parse(text: str, strict=False) -> 'Parser'" in lines  # no decorator/comment
    assert "pkg.core: class Parser: __init__, feed" in lines                  # public methods
    assert "pkg.broken: def still_listed(a, b)" in lines                       # plain-text fallback
    assert ">>> parse('a').text -> 'a'" in lines and ">>> parse('b').text -> 'b'" in lines
    assert ">>> from pkg import parse" in lines
    assert not any(x in card for x in ("_SECRET", "hidden", "_helper", "_private", "default_name"))
    # the package's functions before those of docs/
    assert lines.index("pkg.core: def parse(text: str, strict=False) -> 'Parser'") < \
        lines.index("docs.conf: def setup(app)")
    assert api_card(dict(reversed(list(FILES.items()))), 6000, "me/pkg") == card   # deterministic


def test_the_budget_keeps_some_of_every_kind():
    small = api_card(FILES, 200, "me/pkg")
    assert len(small) <= 201
    for section in ("## exceptions", "## constants", "## functions"):
        assert section in small
    assert "## examples" not in small or ">>>" in small


def test_doctest_lines_take_their_output():
    text = ">>> a = 1\n>>> a + 1\n2\n>>> f(\n... 3)\n>>>\n"
    assert doctest_examples(text) == [">>> a = 1", ">>> a + 1 -> 2", ">>> f("]
