"""The import graph of the `imcflow` package (docs/design.md, "The command layer"): no cycle among
its modules, and no module outside the command layer (`imcflow.cli`) imports it.

The graph is read from the source (every ``import`` statement, at the top of a module or inside a
function; ``if TYPE_CHECKING:`` blocks excepted), so a cycle that only closes at run time, through
a function-level import, counts too. The checks run on the real package and, so that they are
known to fail, on a small package written here with a cycle and a domain module importing the CLI.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import imcflow

ROOT = Path(imcflow.__file__).resolve().parent
#: folders of the repository that are not part of the package
NOT_PACKAGE = {"tests", "benchmarks", "docs", ".venv", "imcflow.egg-info", "build", "out"}


def modules(root: Path, package: str = "imcflow") -> dict[str, Path]:
    """Module name -> file of every module of the package at ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in NOT_PACKAGE or any(p.startswith(".") for p in rel.parts):
            continue
        parts = [package, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(node) -> bool:
    """Whether ``node`` is an ``if TYPE_CHECKING:`` block (its imports never run)."""
    if not isinstance(node, ast.If):
        return False
    return "TYPE_CHECKING" in (getattr(node.test, "id", None), getattr(node.test, "attr", None))


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports (``from a import b`` counts as ``a.b``
    when that is a module, else as ``a``)."""
    is_package = path.name == "__init__.py"
    found = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[:len(here) - (child.level - 1)]
                    base = ".".join(here + ([base] if base else []))
                for a in child.names:
                    found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m != name}


def graph(root: Path, package: str = "imcflow") -> dict[str, set[str]]:
    known = modules(root, package)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a cycle
    through its modules in import order, sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_cycle_through(sorted(component), edges))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return sorted(found)


def _cycle_through(component: list[str], edges) -> list[str]:
    """One cycle inside ``component``, from its first module back to it (breadth-first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return component


def cli_importers(edges: dict[str, set[str]], package: str = "imcflow") -> list[str]:
    """Modules outside the command layer that import it (the entry point ``__main__`` may)."""
    cli = f"{package}.cli"
    return sorted(f"{m} -> {t}" for m, ts in edges.items() for t in ts
                  if (t == cli or t.startswith(cli + "."))
                  and not (m == cli or m.startswith(cli + ".") or m == f"{package}.__main__"))


@pytest.fixture(scope="module")
def imcflow_graph():
    return graph(ROOT)


def test_the_graph_sees_the_package(imcflow_graph):
    # The reader must find the modules and their edges, or the checks below pass on nothing.
    assert {"imcflow.cli", "imcflow.rtl", "imcflow.gen.project", "imcflow.verif.sim",
            "imcflow.fpga.design", "imcflow.sw.mapper", "imcflow.hw.linebuffer"} <= set(imcflow_graph)
    assert "imcflow.rtl" in imcflow_graph["imcflow.gen.project"]
    assert "imcflow.gen.project" in imcflow_graph["imcflow.verif.sim"]
    assert "imcflow.cli.output" in imcflow_graph["imcflow.cli.map"]


def test_no_import_cycles(imcflow_graph):
    found = cycles(imcflow_graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_only_the_command_layer_imports_the_cli(imcflow_graph):
    found = cli_importers(imcflow_graph)
    assert not found, "modules outside imcflow.cli import it: " + ", ".join(found)


def test_gen_does_not_import_verif(imcflow_graph):
    # The generator writes what verification reads; Verilog and lint come from imcflow.rtl.
    found = sorted(f"{m} -> {t}" for m, ts in imcflow_graph.items() if m.startswith("imcflow.gen")
                   for t in ts if t.startswith("imcflow.verif"))
    assert not found, ", ".join(found)


def test_the_checks_fail_on_a_cycle_and_on_a_domain_module_importing_the_cli(tmp_path):
    # sw.a -> sw.b -(inside a function)-> gen.c -(relative)-> sw.a is a cycle; gen.d <-> gen.e
    # is not one (d imports e only for type checking); gen.c importing the CLI is an offender.
    pkg = tmp_path / "pkg"
    for folder in ("sw", "gen", "cli"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "sw" / "a.py").write_text("from pkg.sw import b\n")
    (pkg / "sw" / "b.py").write_text("def f():\n    from pkg.gen.c import g\n")
    (pkg / "gen" / "c.py").write_text("from ..sw.a import x\nfrom pkg.cli.output import emit\n")
    (pkg / "gen" / "d.py").write_text("from typing import TYPE_CHECKING\n"
                                      "if TYPE_CHECKING:\n    from pkg.gen.e import T\n")
    (pkg / "gen" / "e.py").write_text("from pkg.gen import d\n")
    (pkg / "cli" / "output.py").write_text("import json\n")
    edges = graph(pkg, "pkg")
    assert edges["pkg.gen.c"] == {"pkg.sw.a", "pkg.cli.output"} and edges["pkg.gen.d"] == set()
    assert cycles(edges) == [["pkg.gen.c", "pkg.sw.a", "pkg.sw.b", "pkg.gen.c"]]
    assert cli_importers(edges, "pkg") == ["pkg.gen.c -> pkg.cli.output"]
    # without the imports that close the cycle and reach the CLI, both checks pass
    (pkg / "gen" / "c.py").write_text("X = 1\n")
    edges = graph(pkg, "pkg")
    assert cycles(edges) == [] and cli_importers(edges, "pkg") == []


#: what a module may import inside a function (docs/design.md, "The command layer"): heavy
#: dependencies that one path alone needs
LAZY = {"distributed": "Dask (about 1 s), for explore and regress only",
        "matplotlib": "report and Pareto plots only",
        "sklearn": "the digits data set only",
        "imcflow.sw.onnx_import": "imports onnx (about 2 s), for .onnx networks only"}
#: and what one module may import inside a function besides
LAZY_IN = {"imcflow.validate": {"numpy": "the CLI's parser imports it; `imcflow doctor` loads "
                                         "no NumPy"}}
#: modules whose function-level imports are not moved yet: the mutation campaign's block
#: factories import each block's module where they build it
NOT_YET = {"imcflow.verif.mutate", "imcflow.verif.contracts", "imcflow.verif.formal"}


def function_imports(path: Path, lazy=LAZY) -> list[str]:
    """``line: module`` of every import inside a function of the file at ``path`` (``from a
    import b`` as ``a.b``), leaving out those of ``lazy``."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [f"{node.module}.{a.name}" for a in node.names]
                else:
                    continue
                found += [f"{node.lineno}: {n}" for n in names
                          if not any(n == m or n.startswith(m + ".") for m in lazy)]
    return found


def test_imports_sit_at_the_top():
    found = [f"{name}:{line}" for name, path in modules(ROOT).items() if name not in NOT_YET
             for line in function_imports(path, {**LAZY, **LAZY_IN.get(name, {})})]
    assert not found, "imports inside functions: " + ", ".join(found)


def test_the_import_placement_check_fails_on_a_function_level_import(tmp_path):
    (tmp_path / "m.py").write_text("import json\n\ndef f():\n    from imcflow.sw import arith\n"
                                   "    import matplotlib.pyplot\n"
                                   "    from imcflow.sw import onnx_import\n")
    assert function_imports(tmp_path / "m.py") == ["4: imcflow.sw.arith"]


@pytest.mark.parametrize("package", ["imcflow.sw", "imcflow.hw", "imcflow.gen", "imcflow.verif",
                                     "imcflow.fpga"])
def test_each_subpackage_names_its_public_api(package):
    # `from imcflow.hw import LineBuffer` works for every name in a subpackage's __all__, and
    # gives the object of the module the package says defines it.
    module = importlib.import_module(package)
    assert len(module.__all__) >= 5
    for name in module.__all__:
        value = getattr(importlib.import_module(module._API[name]), name)
        assert getattr(module, name) is value
        exec(f"from {package} import {name} as imported", namespace := {})
        assert namespace["imported"] is value
    with pytest.raises(ImportError):
        exec(f"from {package} import no_such_name", {})


def test_the_cli_imports_only_the_chosen_command():
    # `imcflow doctor` (and `imcflow --help`) load neither NumPy nor Amaranth: the CLI imports
    # only the chosen command's module, and printing needs only the standard library.
    code = ("import sys\nfrom imcflow.cli import make_parser\nmake_parser('doctor')\n"
            "import imcflow.cli.doctor\n"
            "print(sorted(m for m in ('numpy', 'amaranth', 'imcflow.sw.mapper') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
