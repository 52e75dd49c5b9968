"""Each package's modules import in one direction: no cycle between two modules of one top-level
package, not even through imports placed inside functions or importlib.import_module."""
from __future__ import annotations

import ast

from tests.conftest import REPO

PACKAGES = ("edge", "train", "export", "serve", "benchmarks", "edge_genre")


def _imports(package: str, tree: ast.AST, modules: set[str]) -> set[str]:
    prefix = f"edge_genre.{package}." if package != "edge_genre" else "edge_genre."
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(prefix):
                names = [node.module[len(prefix):].split(".")[0]]
            elif node.module == prefix[:-1]:
                names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name[len(prefix):].split(".")[0] for a in node.names
                     if a.name.startswith(prefix)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            names = [a.value[len(prefix):].split(".")[0] for a in node.args[:1]
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)
                     and a.value.startswith(prefix)]
        found |= {n for n in names if n in modules}
    return found


def _cycles(package: str) -> list[list[str]]:
    folder = REPO / package
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {m: _imports(package, ast.parse((folder / f"{m}.py").read_text()), modules) - {m}
             for m in modules}
    cycles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_import_cycle_inside_a_package():
    found = {package: _cycles(package) for package in PACKAGES if (REPO / package).is_dir()}
    assert not any(found.values()), {r: c for r, c in found.items() if c}


def test_the_check_sees_a_cycle(tmp_path, monkeypatch):
    """The check can fail: two modules importing each other inside functions."""
    import tests.test_import_cycles as me

    package = tmp_path / "edge"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from edge_genre.edge import b\n")
    (package / "b.py").write_text("import importlib\nimportlib.import_module('edge_genre.edge.a')\n")
    monkeypatch.setattr(me, "REPO", tmp_path)
    assert me._cycles("edge") == [["a", "b", "a"]]
