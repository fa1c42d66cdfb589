"""The windowed re-parse of test files gives the keys and candidates of a whole-file parse."""
from __future__ import annotations

import random

from miners.incremental import AssertionIndex
from miners.static_miner import make_parser, syntax_problem

BASE = '''import os
from unittest import TestCase

import pytest


def helper(x):
    return x + 1


class TestAlpha(TestCase):
    """Alpha."""

    def test_one(self):
        self.assertEqual(helper(1), 2)

    def test_two(self):
        value = helper(2)
        assert value == 3


def test_free():
    assert helper(0) == 1
    with pytest.raises(ValueError):
        int("x")


class TestBeta:
    def test_b(self):
        assert os.sep in "/\\\\"
'''

# Edits a history of a test file goes through; each takes the source and a random generator.
def _insert_method(src: str, rng: random.Random) -> str:
    at = [i for i in range(len(src)) if src.startswith("\n    def test_", i)]
    if not at:
        return src
    i = rng.choice(at) + 1
    n = rng.randrange(1000)
    return src[:i] + f"    def test_new{n}(self):\n        assert helper({n}) == {n + 1}\n\n" + src[i:]


def _append_method(src: str, rng: random.Random) -> str:
    n = rng.randrange(1000)
    return src.rstrip("\n") + f"\n\n    def test_tail{n}(self):\n        assert {n} in [{n}]\n"


def _add_function(src: str, rng: random.Random) -> str:
    n = rng.randrange(1000)
    return src + f"\n\ndef test_f{n}():\n    assert helper({n}) != 0\n"


def _change_assert(src: str, rng: random.Random) -> str:
    at = [i for i in range(len(src)) if src.startswith("== ", i)]
    if not at:
        return src
    i = rng.choice(at)
    return src[:i] + f"== {rng.randrange(50)} + " + src[i + 3:]


def _add_import(src: str, rng: random.Random) -> str:
    return f"import mod{rng.randrange(100)}\n" + src


def _import_and_method(src: str, rng: random.Random) -> str:   # two hunks far apart
    return _insert_method(_add_import(src, rng), rng)


def _delete_method(src: str, rng: random.Random) -> str:
    starts = [i for i in range(len(src)) if src.startswith("\n    def test_", i)]
    if len(starts) < 3:
        return src
    i = rng.choice(starts[:-1]) + 1
    j = src.find("\n    def ", i + 1)
    return src if j < 0 else src[:i] + src[j + 1:]


def _rename_class(src: str, rng: random.Random) -> str:
    return src.replace("class TestAlpha", f"class TestAlpha{rng.randrange(9)}", 1) \
        if "class TestAlpha(" in src else src.replace("class TestAlpha", "class TestAlpha(", 1)


def _break_syntax(src: str, rng: random.Random) -> str:
    i = src.find("    def test_", rng.randrange(len(src)))
    return src if i < 0 else src[:i] + '    s = """unclosed\n' + src[i:]


def _dedent_method(src: str, rng: random.Random) -> str:   # a member becomes module level
    i = src.find("\n    def test_", rng.randrange(len(src)))
    return src if i < 0 else src[:i + 1] + src[i + 5:]


def _indent_comment(src: str, rng: random.Random) -> str:
    i = src.find("\n", rng.randrange(len(src)))
    return src if i < 0 else src[:i + 1] + "        # note\n" + src[i + 1:]


def _semicolons(src: str, rng: random.Random) -> str:
    return src.replace("import os\n", "import os; import sys\n", 1)


def _continuation(src: str, rng: random.Random) -> str:   # a statement continued on the next line
    i = src.find("        assert ", rng.randrange(len(src)))
    j = src.find("\n", i)
    return src if i < 0 or j < 0 else src[:j] + " and \\\n            True" + src[j:]


# Everyday edits, then rarer ones that break the file or its layout.
EDITS = [_insert_method, _append_method, _add_function, _change_assert, _add_import,
         _import_and_method, _delete_method, _rename_class, _break_syntax, _dedent_method,
         _indent_comment, _semicolons, _continuation]
WEIGHTS = [8, 8, 4, 8, 3, 4, 4, 1, 1, 1, 2, 1, 2]


def _check_history(seed: int, steps: int = 60) -> dict:
    rng = random.Random(seed)
    window, whole = AssertionIndex(make_parser()), AssertionIndex(make_parser(), window=False)
    src = BASE
    for step in range(steps):
        edit = rng.choices(EDITS, WEIGHTS)[0]
        new = edit(src, rng)
        if edit is _break_syntax and rng.random() < 0.7:
            new = src   # keep most histories valid for longer
        data = new.encode()
        ref_tree, ref_keys = whole.parse("t.py", data)
        tree, keys = window.parse("t.py", data)
        bad = syntax_problem(ref_tree.root_node) is not None  # type: ignore[union-attr]
        if tree is not None:
            assert (syntax_problem(tree.root_node) is not None) == bad, (seed, step, edit.__name__)
        if bad:
            # the windowed index returned its whole-file tree: the caller sees the error
            assert tree is not None, (seed, step, edit.__name__)
            window.forget("t.py")
            whole.forget("t.py")
            continue
        assert keys == ref_keys, (seed, step, edit.__name__)
        if keys:
            picks = sorted(rng.sample(range(len(keys)), min(3, len(keys))))
            got = window.candidates("t.py", picks)
            ref = whole.candidates("t.py", picks)
            assert [(c.cut, c.end, c.family) for c in got.values()] == \
                [(c.cut, c.end, c.family) for c in ref.values()], (seed, step, edit.__name__)
        src = new
    return window.stats


def test_windowed_reparse_equals_whole_file_parse():
    total: dict[str, int] = {}
    for seed in range(25):
        for k, v in _check_history(seed).items():
            total[k] = total.get(k, 0) + v
    # The fast path is what was checked: most versions after a regular one are windows.
    # (Histories stay on whole parses once an edit leaves the layout irregular.)
    assert total["window"] > 500 and total["window"] > 5 * total["fallback"], total


def test_window_keeps_unchanged_units_without_parsing_them():
    index = AssertionIndex(make_parser())
    src = BASE.encode()
    index.parse("t.py", src)
    new = BASE.replace("assert value == 3", "assert value == 4").encode()
    tree, keys = index.parse("t.py", new)
    assert tree is None and index.stats["window"] == 1 and index.stats["full"] == 1
    part = index._files["t.py"].parts[0]
    assert [n.text.decode().split("(")[0] for n in part.nodes] == ["def test_two"]
    assert ("TestAlpha.test_two", "assert", "assert value == 4") in keys
