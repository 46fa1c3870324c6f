"""The import graph of tunelab has no cycle: imports point down the layers (DESIGN.md).

Every import counts, also one inside a function (only ``if TYPE_CHECKING:`` blocks are exempt,
since they never run). Importing ``tunelab.a.b`` also runs ``tunelab/a/__init__.py``, so that is an
edge too, unless ``tunelab.a`` is a package the importer itself lives in (Python has run it
already). A cycle is reported with the modules in it and the edges that close it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _imported_names(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        return [base] + [f"{base}.{a.name}" for a in node.names]
    return []


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """Module -> the tunelab modules importing it runs (see the module docstring)."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            for name in _imported_names(node, package):
                parts = name.split(".")
                runs = [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in mods]
                for target in runs:
                    implicit_own = target != runs[-1] and mod.startswith(target + ".")
                    if target != mod and not implicit_own:
                        graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_tunelab_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "tunelab.train" in graph  # the walk found the package
    found = cycles(graph)
    report = [
        f"{len(c)} modules: " + "; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in found
    ]
    assert not found, "import cycles:\n" + "\n".join(report)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a function-level import closes a cycle
        (
            {"p/__init__.py": "", "p/a.py": "import p.b", "p/b.py": "def f():\n    import p.a"},
            [["p.a", "p.b"]],
        ),
        # an import under TYPE_CHECKING never runs
        (
            {"p/__init__.py": "", "p/a.py": "import p.b", "p/b.py": "if TYPE_CHECKING:\n    import p.a"},
            [],
        ),
        # importing q.x runs q/__init__.py, which imports p.a: a cycle through the package
        (
            {"p/__init__.py": "", "p/a.py": "from q.x import y", "q/__init__.py": "import p.a", "q/x.py": ""},
            [["p.a", "q"]],
        ),
        # a module importing a sibling does not re-run its own package's __init__
        ({"q/__init__.py": "from q import x", "q/x.py": "from q.y import z", "q/y.py": ""}, []),
        # ... but importing its package explicitly (a registry in __init__) is an edge
        ({"q/__init__.py": "from q import x", "q/x.py": "from q import REG"}, [["q", "q.x"]]),
    ],
)
def test_the_cycle_finder_sees_every_kind_of_edge(tmp_path: Path, files: dict[str, str], expected) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cycles(import_graph(tmp_path)) == expected
