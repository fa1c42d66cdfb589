"""Each assertion family: hand-checked prefixes (last line) and targets."""
from __future__ import annotations

from collections import Counter

import pytest

from miners.static_miner import StaticMinerConfig, cap_tasks, make_parser, tasks_in_file


def mine(source: str, config: StaticMinerConfig = StaticMinerConfig()):
    data = source.encode()
    tree = make_parser().parse(data)
    counts: Counter = Counter()
    rows, _ = tasks_in_file(data, tree.root_node, "tests/test_x.py", "r", "c0ffee", 0, config, counts)
    return cap_tasks(rows, config, 0, counts), counts


def only(source: str) -> dict:
    rows, counts = mine(source)
    assert len(rows) == 1, (rows, counts)
    return rows[0]


def last_line(prefix: str) -> str:
    return prefix.splitlines()[-1]


@pytest.mark.parametrize("stmt, prefix_end, target, family, ttype", [
    ("assert s.size == 30", "    assert s.size == ", "30", "assert", "numeric"),
    ("assert a < bb < c", "    assert a < ", "bb", "assert", "variable"),
    ("assert x not in {1, 2}", "    assert x not in ", "{1, 2}", "assert", "collection"),
    ("assert x is not None", "    assert x is not ", "None", "assert", "bool_none"),
    ("assert f(1) == 'ab', 'message'", "    assert f(1) == ", "'ab'", "assert", "string"),
    ("assert (v == -12)", "    assert (v == ", "-12", "assert", "numeric"),
    ("assert v == g(1)", "    assert v == ", "g(1)", "assert", "call"),
    ("assert v == a + b", "    assert v == ", "a + b", "assert", "complex"),
    ("self.assertEqual(a, f(2))", "    self.assertEqual(a, ", "f(2))", "unittest", "call"),
    ("self.assertEqual(a, bb, 'msg')", "    self.assertEqual(a, ", "bb, 'msg')", "unittest", "variable"),
    ("self.assertAlmostEqual(x, 0.5, places=3)", "    self.assertAlmostEqual(x, ",
     "0.5, places=3)", "unittest", "numeric"),
    ("self.assertTrue(ok)", "    self.assertTrue(", "ok)", "unittest", "variable"),
    ("self.assertIsNone(x, 'msg')", "    self.assertIsNone(", "x, 'msg')", "unittest", "variable"),
    ("with pytest.raises(ValueError, match='x'):\n        pass", "    with pytest.raises(",
     "ValueError, match='x')", "raises", "variable"),
    ("self.assertRaises(KeyError, d.pop, 1)", "    self.assertRaises(", "KeyError, d.pop, 1)",
     "raises", "variable"),
    ("with self.assertRaisesRegex(E, 'boom'):\n        pass", "    with self.assertRaisesRegex(",
     "E, 'boom')", "raises", "variable"),
    ("assert y == pytest.approx(0.5, rel=1e-3)", "    assert y == pytest.approx(",
     "0.5, rel=1e-3)", "approx", "numeric"),
    ("assert y == approx([1.0, 2.0])", "    assert y == approx(", "[1.0, 2.0])", "approx",
     "collection"),
    ("np.testing.assert_allclose(a, b)", "    np.testing.assert_allclose(a, ", "b)", "numpy",
     "variable"),
    ("tm.assert_frame_equal(left, expected, check_dtype=False)", "    tm.assert_frame_equal(left, ",
     "expected, check_dtype=False)", "numpy", "variable"),
    ("assert_array_equal(out)", "    assert_array_equal(", "out)", "numpy", "variable"),
])
def test_family_prefix_and_target(stmt, prefix_end, target, family, ttype):
    row = only(f"import pytest\n\ndef test_it():\n    {stmt}\n")
    assert last_line(row["prefix"]) == prefix_end
    assert row["target"] == target
    assert row["assertion_type"] == family
    assert row["target_type"] == ttype
    assert row["test_function"] == "test_it"
    assert row["test_class"] is None
    assert row["lineno"] == 4


@pytest.mark.parametrize("stmt", [
    "assert x", "assert not done", "assert isinstance(x, int)",
    "m.assert_called_once_with(3)", "mock_obj.assert_any_call(1, 2)",
    "self.mock.assert_called_with(1)", "self.assertTrue()", "print(x == 2)",
])
def test_no_task(stmt):
    rows, _ = mine(f"def test_it():\n    {stmt}\n")
    assert rows == []


def test_multiline_target_is_flattened_and_comments_dropped():
    row = only("def test_it():\n    assert out == [\n        1,  # one\n        2,\n    ]\n")
    assert row["target"] == "[1, 2,]"
    row = only("def test_it():\n    self.assertEqual(\n        a,\n        f(x,\n          y),\n    )\n")
    assert row["target"] == "f(x, y),)"
    assert row["lineno"] == 4 and row["col_offset"] == 8


def test_single_line_target_spacing_kept():
    assert only("def test_it():\n    assert s == 'a  b'\n")["target"] == "'a  b'"


def test_byte_offsets_with_non_ascii():
    row = only("def test_it():\n    assert naïve_é == 'ü'\n")
    assert row["col_offset"] == len("    assert naïve_é == ".encode())
    assert row["byte_offset"] == len("def test_it():\n    assert naïve_é == ".encode())
    assert row["target"] == "'ü'"


def test_nested_classes_async_and_nested_functions():
    src = (
        "class TestOuter:\n"
        "    class TestInner:\n"
        "        async def test_a(self):\n"
        "            def inner():\n"
        "                assert val == 10\n"
        "            assert await f() == 20\n")
    rows, _ = mine(src)
    assert [(r["test_class"], r["test_function"], r["target"]) for r in rows] == [
        ("TestOuter.TestInner", "test_a", "10"), ("TestOuter.TestInner", "test_a", "20")]
    assert rows[1]["prefix"] == ("class TestOuter:\n    class TestInner:\n"
                                 "        async def test_a(self):\n            def inner():\n"
                                 "                assert val == 10\n            assert await f() == ")


def test_one_task_per_assert_statement_and_outer_call():
    rows, _ = mine("def test_it():\n    self.assertEqual(f(self.assertTrue(x)), 22)\n")
    assert [r["target"] for r in rows] == ["22)"]
