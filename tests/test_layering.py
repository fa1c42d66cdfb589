"""Imports point one way: no cycle between packages or files, a torch-free core, and
scoring that works where torch cannot be imported."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("repopeftbench", "data_cards", "miners", "evaluators", "baselines", "code2lora_models")
# The CLI is the one module allowed to import every stage.
CLI_MODULES = {"repopeftbench.cli", "repopeftbench.__main__"}
TORCH_FREE = ("repopeftbench.schema", "repopeftbench.io", "repopeftbench.splits",
              "repopeftbench.metrics", "repopeftbench.dataset", "repopeftbench.results",
              "repopeftbench.reasons", "repopeftbench.errors", "repopeftbench.batching")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module ``name`` imports (at any depth of its code), resolved to project modules
    where possible, external top-level names otherwise."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        else:
            continue
        for t in targets:
            while t and t not in modules and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in modules:
                if t != name:
                    found.add(t)
            elif t:
                found.add(t.split(".")[0])
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {i for i in _imports(name, path, modules) if i in modules}
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package(module: str) -> str:
    return "cli" if module in CLI_MODULES else module.split(".")[0]


def test_no_import_cycle_between_files():
    assert _cycles(_graph()) == []


def test_no_import_cycle_between_packages():
    graph = _graph()
    packages: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        packages.setdefault(_package(mod), set()).update(
            _package(d) for d in deps if _package(d) != _package(mod))
    assert _cycles(packages) == [], packages
    assert "cli" not in {d for deps in packages.values() for d in deps}


def test_method_packages_are_siblings_that_do_not_import_each_other():
    """baselines and code2lora_models share pieces through evaluators, never directly."""
    graph = _graph()
    for mod, deps in graph.items():
        pkg = _package(mod)
        if pkg in ("baselines", "code2lora_models"):
            other = {"baselines": "code2lora_models", "code2lora_models": "baselines"}[pkg]
            assert not {d for d in deps if _package(d) == other}, f"{mod} imports {other}"


def test_methods_import_only_lower_modules_never_the_harness():
    """The harness runs methods; a method module never imports it (nor the report, the
    leaderboard or the demo above it)."""
    above = {"evaluators.harness", "evaluators.report", "evaluators.leaderboard", "evaluators.demo"}
    for mod, deps in _graph().items():
        if _package(mod) in ("baselines", "code2lora_models"):
            assert not deps & above, f"{mod} imports {sorted(deps & above)}"


def test_core_does_not_import_torch_or_later_stages():
    modules = _modules()
    graph = _graph()
    for name in TORCH_FREE:
        seen, todo, external = set(), [name], set()
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            external |= {i for i in _imports(m, modules[m], modules) if i not in modules}
            todo += graph[m]
        stages = {s.split(".")[0] for s in seen} - {"repopeftbench"}
        assert not stages, f"{name} reaches {sorted(stages)}"
        assert not external & {"torch", "transformers", "peft", "numpy", "matplotlib"}, (
            f"{name} imports {sorted(external & {'torch', 'transformers', 'peft'})}")


_BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "peft", "matplotlib"):
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, Block())
from repopeftbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_scoring_works_without_torch(tmp_path):
    from miners.build import build
    from repopeftbench.dataset import Benchmark

    from conftest import make_repo
    tests = "".join(f"def test_{k}():\n    assert f({k}) == {k * 11}\n\n" for k in range(12))
    repo = make_repo(tmp_path / "r", {"tests/test_x.py": tests, "x.py": "def f(x):\n    return x\n"})
    lst = tmp_path / "repos.jsonl"
    lst.write_text(json.dumps({"repo_id": "a/r", "url": str(repo), "split": "cr_test"}) + "\n")
    build(lst, tmp_path / "bench", progress=False)
    bench = Benchmark(tmp_path / "bench")
    tasks = bench.tasks("static", "test_cross_repo")
    header = {"dataset_sha256": bench.sha256, "config": "static", "split": "test_cross_repo",
              "method": "half"}
    for name, n_right in (("half", len(tasks) // 2), ("none", 0)):
        lines = [json.dumps({**header, "method": name})] + [
            json.dumps({"task_id": t["task_id"], "prediction": t["target"] if i < n_right else "0"})
            for i, t in enumerate(tasks)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "predictions.jsonl").write_text("\n".join(lines) + "\n")
        proc = _run_without_torch("score", "--dataset", str(tmp_path / "bench"), "--split",
                                  "test_cross_repo", "--predictions", str(tmp_path / f"{name}.jsonl"),
                                  "--out", str(tmp_path / "runs" / name))
        assert proc.returncode == 0, proc.stderr
        assert "| em |" in proc.stdout
    proc = _run_without_torch("compare", str(tmp_path / "runs/none"), str(tmp_path / "runs/half"),
                              "--dataset", str(tmp_path / "bench"))
    assert proc.returncode == 0, proc.stderr
    assert "points of em" in proc.stdout
    proc = _run_without_torch("leaderboard", "--runs", str(tmp_path / "runs"), "--out",
                              str(tmp_path / "lb"))
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib is not installed" in proc.stderr
    md = (tmp_path / "lb/leaderboard.md").read_text()
    assert "| 1 | half |" in md and "| a/r | 45.5 (11) | 0.0 (11) |" in md
    assert "(no CI: 1 repos)" in md                   # one repository: no interval shown
    assert "<table" in (tmp_path / "lb/index.html").read_text()
    proc = _run_without_torch("methods")
    assert proc.returncode == 0, proc.stderr
    assert "pretrained" in proc.stdout
