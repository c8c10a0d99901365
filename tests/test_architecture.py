"""The package's layers: no import circle, an algorithm module that touches no
file and loads no model, and nothing tied to a git checkout.

The import graph is read from the source with ``ast`` (every ``import`` in a
module, at the top or inside a function), so a circle hidden in a function
body counts too.  Run ``python tests/test_architecture.py`` to print it.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seo_lite"


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: seo_lite modules it imports}`` for every module of the package."""
    def name(p: Path) -> str:
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    mods = {name(p): p for p in root.rglob("*.py")}
    graph = {}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                found = subs + ([target] if len(subs) < len(node.names) else [])
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            else:
                continue
            deps |= {d for d in found if d in mods and d != mod}
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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


def test_the_graph_sees_a_circle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]


def test_no_import_circle_in_the_package():
    assert cycles(import_graph()) == []


def test_the_algorithm_module_reads_no_file_and_loads_no_model():
    graph = import_graph()
    allowed = {"seo_lite.config", "seo_lite.experience", "seo_lite.llm.base", "seo_lite.prompts",
               "seo_lite.stats", "seo_lite.tasks.base"}          # types and pure functions
    assert graph["seo_lite.seo"] <= allowed, graph["seo_lite.seo"] - allowed
    tree = ast.parse((PACKAGE / "seo.py").read_text(encoding="utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not {"open", "Path", "make_llm", "load_splits", "RunDir"} & names
    assert not {"read_text", "write_text", "read_bytes", "mkdir"} & attrs


def test_no_module_is_tied_to_a_checkout():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "parents[1]" not in text and "REPO" not in text, path


def test_the_grid_finds_run_seo_or_says_where_to_get_it(tmp_path, monkeypatch):
    from seo_lite.grid_runner import find_run_notebook

    monkeypatch.chdir(tmp_path)                           # no checkout here or above
    with pytest.raises(FileNotFoundError, match="not found.*clone the repository.*notebook=PATH"):
        find_run_notebook()
    from seo_lite.ablation import main
    assert main(["smoke", "--runs", str(tmp_path / "runs")]) == 2     # one line, no traceback
    assert not (tmp_path / "runs").exists()
    with pytest.raises(FileNotFoundError, match="give the path"):
        find_run_notebook(tmp_path / "missing.ipynb")
    checkout = tmp_path / "clone"
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "notebooks" / "run_seo.ipynb").write_text("{}")
    monkeypatch.chdir(checkout / "notebooks")             # a kernel started in notebooks/
    assert find_run_notebook() == (checkout / "notebooks" / "run_seo.ipynb").resolve()
    monkeypatch.chdir(checkout)                            # the repository root
    assert find_run_notebook() == (checkout / "notebooks" / "run_seo.ipynb").resolve()


def test_importing_the_package_from_elsewhere_needs_no_checkout(tmp_path):
    code = ("import seo_lite.ablation, seo_lite.grid_runner, seo_lite.params, seo_lite.cli, "
            "seo_lite.figures, seo_lite.generalization, seo_lite.training; print('ok')")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


if __name__ == "__main__":                                   # print the graph
    g = import_graph()
    for m in sorted(g):
        print(f"{m:<32} -> {', '.join(sorted(d.removeprefix('seo_lite.') for d in g[m])) or '-'}")
    print("circles:", cycles(g) or "none")
