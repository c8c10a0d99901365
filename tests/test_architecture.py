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


# The layers by folder, top to bottom; a module imports only from its own layer or above.
# tasks/ and llm/ are machinery (task families, model backends) behind interfaces the method
# uses: INTERFACES.  cli.py and the package's __init__ are the front door above everything.
LAYERS = ["method", "machinery", "lab", "front"]
INTERFACES = {"seo_lite.tasks.base", "seo_lite.tasks.calibration", "seo_lite.llm.base",
              "seo_lite.llm.usage", "seo_lite.llm.secrets"}


def layer(module: str) -> str:
    parts = module.split(".") + [""]
    if parts[1] in ("method", "machinery", "lab"):
        return parts[1]
    return "machinery" if parts[1] in ("tasks", "llm") else "front"


def test_each_folder_imports_only_from_its_layer_or_above():
    graph = import_graph()
    assert {layer(m) for m in graph} == set(LAYERS)
    wrong = {(m, d) for m, deps in graph.items() for d in deps
             if LAYERS.index(layer(d)) > LAYERS.index(layer(m)) and d not in INTERFACES}
    assert not wrong, sorted(wrong)


def test_the_method_folder_reads_no_file_and_loads_no_model():
    graph = import_graph()
    method = {m for m in graph if layer(m) == "method"}
    assert "seo_lite.method.seo" in method
    for mod in method:                               # only its own pieces and the interfaces
        assert graph[mod] <= method | INTERFACES, (mod, graph[mod] - method - INTERFACES)
    for path in (PACKAGE / "method").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not {"open", "Path", "make_llm", "load_splits", "RunDir"} & names, path
        assert not {"read_text", "write_text", "read_bytes", "mkdir"} & attrs, path


def test_no_module_is_tied_to_a_checkout():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "parents[1]" not in text and "REPO" not in text, path


def test_the_grid_finds_run_seo_or_says_where_to_get_it(tmp_path, monkeypatch):
    from seo_lite.lab.grid_runner import find_run_notebook

    monkeypatch.chdir(tmp_path)                           # no checkout here or above
    with pytest.raises(FileNotFoundError, match="not found.*clone the repository.*notebook=PATH"):
        find_run_notebook()
    from seo_lite.lab.ablation import main
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
    code = ("import seo_lite.lab.ablation, seo_lite.lab.grid_runner, seo_lite.machinery.params, seo_lite.cli, "
            "seo_lite.lab.figures, seo_lite.lab.generalization, seo_lite.machinery.training; print('ok')")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


if __name__ == "__main__":                                   # print the graph
    g = import_graph()
    for m in sorted(g):
        print(f"{m:<32} -> {', '.join(sorted(d.removeprefix('seo_lite.') for d in g[m])) or '-'}")
    print("circles:", cycles(g) or "none")
