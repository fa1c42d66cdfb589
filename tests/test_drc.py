"""Dependency-resolved context on a hand-made repository: every import form, re-exports
through __init__, a missing module, a file that does not parse, an import cycle, the
budget cut."""
from __future__ import annotations

from evaluators.drc import Resolver, import_statements, module_files, resolve

FILES = {
    "src/shop/__init__.py": '"""The shop."""\nfrom .cart import Cart\nfrom .prices import *\n'
                            "from .loop_a import ping\n",
    "src/shop/cart.py": (
        "from .prices import TAX\n\n\n"
        "class Cart:\n"
        '    """A basket of items."""\n\n'
        "    def __init__(self, owner):\n        self.owner = owner\n        self.items = []\n\n"
        "    def add(self, item, qty=1):\n"
        '        """Add qty of item."""\n'
        "        self.items.append((item, qty))\n\n"
        "    def total(self) -> float:\n        return sum(q for _, q in self.items) * (1 + TAX)\n"),
    "src/shop/prices.py": (
        '__all__ = ["TAX", "discount"]\n'
        "TAX = 0.2\nHIDDEN = 1\n\n\n"
        "def discount(price, rate=0.1):\n"
        '    """Price after the discount."""\n'
        "    return price * (1 - rate)\n\n\n"
        "def _private():\n    return 0\n"),
    "src/shop/broken.py": "def good_one(x):\n    return x + 1\n\ndef bad(:\n    pass\n\n"
                          "class Survivor:\n    kind = 'ok'\n",
    "src/shop/loop_a.py": "from .loop_b import ping\n",
    "src/shop/loop_b.py": "from .loop_a import ping\n",
    "src/shop/util/__init__.py": "",
    "src/shop/util/text.py": "def shout(s):\n    return s.upper() + '!'\n",
    "tests/test_cart.py": "",
}

PREFIX = """import os
import shop.util.text as T
from shop import Cart, discount as d
from shop.broken import good_one, Survivor
from shop import ping
from missing.module import nothing
from shop.prices import *
from shop.util import text
from . import helpers
from shop import (
    Cart,
)


def test_cart():
    cart = Cart("ann")
    cart.add("pen")
    assert T.shout("a") == "A!"
    assert text.shout("b") == "B!"
    assert d(10) == 9
    assert good_one(1) == 2
    assert cart.total() == """


def test_modules_are_found_at_the_root_and_under_src():
    mods = module_files(list(FILES))
    assert mods["shop"] == "src/shop/__init__.py" and mods["shop.util.text"] == "src/shop/util/text.py"
    assert "tests.test_cart" in mods


def test_import_statements_join_parentheses():
    stmts = import_statements(PREFIX)
    assert "from shop import   Cart, " in " ".join(stmts).replace("\n", " ") or any(
        s.startswith("from shop import") and "Cart" in s for s in stmts)
    assert len(stmts) == 10


def test_every_import_form_resolves_to_its_definitions():
    r = Resolver(FILES)
    got = resolve(PREFIX, "tests/test_cart.py", r, budget=10_000)
    names = set(got.names)
    # re-exported through __init__ (from .cart import Cart); `as` alias; star through __all__
    assert {"Cart", "discount", "TAX"} <= names
    assert "HIDDEN" not in names and "_private" not in names       # not in __all__
    assert "shout" in names                                        # import a.b as T; from a import submodule
    assert "good_one" in names and "Survivor" in names             # from a file that does not parse
    assert "ping" not in names                                     # a cycle of re-exports: nothing, no hang
    assert "class Cart:" in got.text and "def total(self) -> float:" in got.text
    assert got.files and all(f.startswith("src/shop/") for f in got.files)
    # the most used name first: Cart appears more than any other
    assert got.names[0] == "Cart"


def test_the_budget_cuts_bodies_before_signatures():
    r = Resolver(FILES)
    full = resolve(PREFIX, "tests/test_cart.py", r, budget=10_000)
    small = resolve(PREFIX, "tests/test_cart.py", r, budget=full.n_tokens // 2)
    assert small.n_tokens <= full.n_tokens // 2
    assert "class Cart:" in small.text                      # the most relevant signature stays
    assert "self.items.append" not in small.text            # ... its bodies went first
    tiny = resolve(PREFIX, "tests/test_cart.py", r, budget=12)
    assert tiny.n_tokens <= 12
    assert resolve(PREFIX, "tests/test_cart.py", r, budget=0).text == ""


def test_no_import_of_the_repository_gives_no_context():
    r = Resolver(FILES)
    assert resolve("import os\nimport json\n\ndef test_x():\n    assert os.sep == ",
                   "tests/test_x.py", r).text == ""


def test_the_drc_method_puts_the_definitions_before_the_prefix(tmp_path):
    import pytest
    pytest.importorskip("torch")
    from conftest import build_bench, make_tiny_model
    from evaluators.harness import evaluate
    files = {p: c for p, c in FILES.items() if p != "tests/test_cart.py"}
    files["tests/test_cart.py"] = PREFIX.replace("from . import helpers\n", "") + "3\n"
    bench = build_bench(tmp_path, files, ["cr_test"], "d")
    tiny = make_tiny_model(tmp_path / "tiny", list(files.values()))
    res = evaluate(bench, "static", "test_cross_repo", "drc", str(tiny), tmp_path / "run",
                   progress=False, scoring="teacher-forced")
    assert res.scores["n_tasks"] > 0
    from evaluators.registry import RunContext, get_method
    from repopeftbench.dataset import Benchmark
    b = Benchmark(bench)
    m = get_method("drc")(RunContext(model_name=str(tiny)))
    m.setup(b, "static")
    tasks = b.tasks("static", "test_cross_repo")
    reqs = m.predict(tasks[0]["repo_id"], tasks)
    assert all(r.prompt.endswith(t["prefix"]) for r, t in zip(reqs, tasks))
    assert "# src/shop/cart.py" in reqs[-1].prompt and "class Cart:" in reqs[-1].prompt
