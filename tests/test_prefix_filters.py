"""Structured prefix, every filter reason, and the stratified caps."""
from __future__ import annotations

from collections import Counter

from miners.filters import apply_caps, filter_reason, stratified_cap
from miners.static_miner import StaticMinerConfig

from test_assertions import mine, only

FILE = '''"""Module docstring."""
import os
import pytest

CONST = 3


def helper(x):
    return x + 1


class Widget:
    size = 2


@pytest.fixture
def widget():
    return Widget()


def test_first():
    assert helper(1) == 22


class TestThing:
    """Class doc."""
    attr = 1

    def setUp(self):
        self.w = Widget()

    def make(self):
        return 5

    def test_other(self):
        assert self.make() == 55

    @pytest.mark.slow
    def test_target(self, widget):
        value = helper(CONST)
        assert value == 44

    def tearDown(self):
        self.w = None


def later_helper():
    return 0
'''


def test_structured_prefix_exact():
    rows, _ = mine(FILE)
    row = next(r for r in rows if r["target"] == "44")
    assert row["prefix"] == (
        '"""Module docstring."""\n'
        "import os\n"
        "import pytest\n"
        "CONST = 3\n"
        "def helper(x):\n"
        "    return x + 1\n"
        "class Widget:\n"
        "    size = 2\n"
        "@pytest.fixture\n"
        "def widget():\n"
        "    return Widget()\n"
        "class TestThing:\n"
        '    """Class doc."""\n'
        "    attr = 1\n"
        "    def setUp(self):\n"
        "        self.w = Widget()\n"
        "    def make(self):\n"
        "        return 5\n"
        "    def tearDown(self):\n"
        "        self.w = None\n"
        "    @pytest.mark.slow\n"
        "    def test_target(self, widget):\n"
        "        value = helper(CONST)\n"
        "        assert value == ")
    assert row["test_class"] == "TestThing" and row["test_function"] == "test_target"
    assert row["lineno"] == 41 and row["col_offset"] == 24


def test_prefix_cap_keeps_last_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(700))
    rows, _ = mine(f"def test_long():\n{body}    assert x699 == 699\n",
                   StaticMinerConfig(prefix_max_lines=600))
    lines = rows[0]["prefix"].split("\n")
    assert len(lines) == 600
    assert lines[-1] == "    assert x699 == " and lines[0] == "    x101 = 101"


def test_each_filter_reason_is_counted():
    src = ("assert top == 10\n"                       # module_level
           "def test_f():\n"
           "    assert a == ()\n"                     # empty_target (brackets only)
           "    assert e == ''\n"                     # kept: an empty string is a real target
           "    assert b == 7\n"                      # one_char_target
           "    assert c == 'x' * 600\n"              # kept (target short: "'x' * 600")
           "    assert d == '" + "y" * 501 + "'\n"    # target_too_long
           "    f((,))\n"                             # (syntax error would drop the file: not used)
           )
    src = src.replace("    f((,))\n", "")
    rows, counts = mine(src)
    assert [r["target"] for r in rows] == ["''", "'x' * 600"]
    assert counts == Counter({"module_level": 1, "empty_target": 1, "one_char_target": 1,
                              "target_too_long": 1})


def test_filter_reason_order_and_rules():
    assert filter_reason(False, "", "abc", 500) == "module_level"
    assert filter_reason(True, "p", "   ", 500) == "empty_target"
    assert filter_reason(True, "p", "()", 500) == "empty_target"
    assert filter_reason(True, "p", "x", 500) == "one_char_target"
    assert filter_reason(True, "p", ", b)", 500) == "leading_comma"
    assert filter_reason(True, "p", "a" * 501, 500) == "target_too_long"
    assert filter_reason(True, "f((, ", "abc", 500) == "prefix_paren_comma"
    assert filter_reason(True, "p", "ab", 500) is None


def test_duplicate_targets_in_a_file_are_dropped():
    rows, counts = mine("def test_a():\n    assert a == 10\n\ndef test_b():\n    assert b == 10\n"
                        "    assert c == 11\n")
    assert [r["target"] for r in rows] == ["10", "11"]
    assert counts["duplicate"] == 1


def test_caps_per_function_file_repo_stratified():
    lines = "".join(f"    assert v{i} == {100 + i}\n" for i in range(8))
    lines += "".join(f"    assert s{i} == 'str{i}'\n" for i in range(2))
    rows, counts = mine(f"def test_many():\n{lines}")
    assert len(rows) == 5 and counts["cap_function"] == 5
    # 8 numeric + 2 string over a cap of 5: 4 numeric and 1 string (proportional)
    assert Counter(r["target_type"] for r in rows) == Counter({"numeric": 4, "string": 1})
    funcs = "".join(f"def test_{k}():\n" + "".join(f"    assert v == {k * 10 + i + 100}\n"
                                                    for i in range(3)) for k in range(10))
    rows, counts = mine(funcs)
    assert len(rows) == 20 and counts["cap_file"] == 10


def test_stratified_cap_is_deterministic_and_ordered():
    items = [(f"id{i}", "numeric" if i % 3 else "string") for i in range(30)]
    kept, dropped = stratified_cap(items, 10, kind=lambda t: t[1], ident=lambda t: t[0], seed=1)
    again, _ = stratified_cap(items, 10, kind=lambda t: t[1], ident=lambda t: t[0], seed=1)
    assert kept == again and len(kept) == 10 and len(dropped) == 20
    assert kept == sorted(kept, key=items.index)
    assert Counter(t[1] for t in kept) == Counter({"numeric": 7, "string": 3})
    counts: Counter = Counter()
    out = apply_caps(items, [("cap_repo", lambda t: 0, 4)], lambda t: t[1], lambda t: t[0], 0, counts)
    assert len(out) == 4 and counts["cap_repo"] == 26


def test_fixture_named_test_is_kept_as_helper_and_later_helpers_are_not():
    row = only("import pytest\n@pytest.fixture\ndef test_data():\n    return 1\n"
               "def test_it(test_data):\n    assert test_data == 11\ndef later():\n    pass\n")
    assert row["prefix"] == ("import pytest\n@pytest.fixture\ndef test_data():\n    return 1\n"
                             "def test_it(test_data):\n    assert test_data == ")


# --------------------------------------------------- regressions found on real repositories

def test_punctuation_filter_keeps_string_and_set_literals_of_punctuation():
    assert filter_reason(True, "p", '{"-", "--", "~"}', 500) is None
    assert filter_reason(True, "p", "'?!'", 500) is None
    assert filter_reason(True, "p", "...", 500) is None
    assert filter_reason(True, "p", "([], {})", 500) == "empty_target"
    assert filter_reason(True, "p", " ,) ", 500) == "empty_target"


def test_backslash_continuation_is_not_an_operand():
    src = ("def test_c(self):\n"
           "    assert value == \\\n"
           "        compute(3)\n"
           "    self.assertEqual(first, \\\n"
           "                     second)\n"
           "    with pytest.raises(\\\n"
           "            KeyError):\n"
           "        pass\n")
    rows, counts = mine(src)
    assert [(r["assertion_type"], r["target"]) for r in rows] == [
        ("assert", "compute(3)"), ("unittest", "second)"), ("raises", "KeyError)")]
    assert rows[0]["prefix"].endswith("    assert value == \\\n        ")
    assert rows[1]["prefix"].endswith("    self.assertEqual(first, \\\n                     ")
    assert not +counts


def test_usefixtures_marks_a_test_not_a_fixture():
    src = ("import pytest\n\n\n"
           "@pytest.fixture(scope='module')\n"
           "def db():\n"
           "    return {}\n\n\n"
           "@pytest.mark.usefixtures('db')\n"
           "def test_first():\n"
           "    assert secret_value() == 'first body'\n\n\n"
           "def test_second():\n"
           "    assert other() == 'second'\n")
    rows, _ = mine(src)
    second = next(r for r in rows if r["test_function"] == "test_second")
    assert second["prefix"] == ("import pytest\n@pytest.fixture(scope='module')\ndef db():\n"
                                "    return {}\ndef test_second():\n    assert other() == ")


def test_module_level_mixin_keeps_helpers_and_drops_its_tests():
    src = ("class CheckMixin:\n"
           "    limit = 3\n\n"
           "    def check(self, x):\n"
           "        return x < self.limit\n\n"
           "    def test_in_mixin(self):\n"
           "        assert self.check(1) is True\n\n\n"
           "class TestThing(CheckMixin):\n"
           "    def test_thing(self):\n"
           "        assert self.check(2) == flag\n")
    rows, _ = mine(src)
    thing = next(r for r in rows if r["test_function"] == "test_thing")
    assert thing["prefix"] == ("class CheckMixin:\n    limit = 3\n    def check(self, x):\n"
                               "        return x < self.limit\nclass TestThing(CheckMixin):\n"
                               "    def test_thing(self):\n        assert self.check(2) == ")
