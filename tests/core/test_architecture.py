"""The shape of the code, checked like behaviour: no import cycles among the shipped modules
(Tarjan's strongly connected components over grimp's import graph), no module reaching
into another's ``_private`` names, SQL only inside ``auditor/store/``, and no module over
400 lines unless the allowlist below says why. A check marked xfail(strict) names what is
not yet true; when it becomes true the test fails as XPASS: remove the mark then.

By hand: ``python -m pytest tests/core/test_architecture.py -q`` (each failure lists its
offenders)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable
from pathlib import Path

import grimp

from tests.conftest import ROOT

PACKAGES = ("auditor", "dashboards")
MAX_LINES = 400
# module (relative path) -> why it may be longer than MAX_LINES
LONG_MODULES: dict[str, str] = {}
SQL = re.compile(
    r"\bSELECT\b|\bINSERT\s+(?:OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?(?:TEMP\w*\s+)?"
    r"(?:TABLE|VIEW|INDEX|SEQUENCE|MACRO)\b|\bGROUP\s+BY\b|\bORDER\s+BY\b")


def shipped() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative: no recursion limit on deep chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def import_cycles() -> list[list[str]]:
    graph = grimp.build_graph(*PACKAGES)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    return [c for c in strongly_connected(edges)
            if len(c) > 1 or c[0] in edges[c[0]]]


def test_tarjan_finds_cycles_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["d"], ["e"], ["f"]]


def test_auditor_never_imports_the_dashboard() -> None:
    graph = grimp.build_graph(*PACKAGES)
    chain = graph.find_shortest_chain(importer="auditor", imported="dashboards",
                                      as_packages=True)
    assert chain is None, "auditor imports dashboards: " + " -> ".join(chain or ())


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, module: str, is_package: bool = False) -> Iterable[str]:
    """``from x import _y`` and ``x._y`` where ``x`` is an imported project module: a module
    using another's private name (line: what)."""
    tree = ast.parse(source)
    package = module.split(".") if is_package else module.split(".")[:-1]
    modules: set[str] = set()  # local names bound to project modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *filter(None, [
                    node.module])])
            for alias in node.names:
                if _private(alias.name):
                    yield f"{node.lineno}: imports {base}.{alias.name}"
                if base.split(".")[0] in PACKAGES:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    modules.add(alias.asname or alias.name.split(".")[0])
                if any(_private(part) for part in alias.name.split(".")):
                    yield f"{node.lineno}: imports {alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr)
                and isinstance(node.value, ast.Name) and node.value.id in modules):
            yield f"{node.lineno}: uses {node.value.id}.{node.attr}"


def test_private_use_check_sees_every_form() -> None:
    source = ("from auditor.cli import _helper\nfrom auditor import cli\ncli._other()\n"
              "from .render import _fmt, shown\nimport auditor._hidden\n"
              "from typing import _SpecialForm\nx = cli.__doc__\n")
    assert list(private_uses(source, "auditor.cli.main")) == [
        "1: imports auditor.cli._helper", "4: imports auditor.cli.render._fmt",
        "5: imports auditor._hidden", "6: imports typing._SpecialForm", "3: uses cli._other"]


def test_no_module_uses_another_modules_private_names() -> None:
    found = [f"{path.relative_to(ROOT)}:{hit}" for path in shipped()
             for hit in private_uses(path.read_text(encoding="utf-8"), module_name(path),
                                     path.name == "__init__.py")]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def sql_outside_the_store() -> list[str]:
    """SQL keywords in code (strings included) outside auditor/store/ (and auditor/store.py,
    its single-module form until the package lands); comments are fine."""
    store = ROOT / "auditor" / "store"
    found = []
    for path in shipped():
        if path.is_relative_to(store) or path == ROOT / "auditor" / "store.py":
            continue
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        for token in tokens:
            if token.type != tokenize.COMMENT and SQL.search(token.string):
                found.append(f"{path.relative_to(ROOT)}:{token.start[0]}")
    return sorted(set(found))


def test_no_sql_outside_the_store() -> None:
    found = sql_outside_the_store()
    assert not found, "SQL outside auditor/store/:\n" + "\n".join(found)


def long_modules() -> list[str]:
    found = []
    for path in shipped():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        relative = str(path.relative_to(ROOT))
        if lines > MAX_LINES and relative not in LONG_MODULES:
            found.append(f"{relative} ({lines} lines)")
    return found


def test_no_module_over_400_lines_unless_allowed() -> None:
    found = long_modules()
    assert not found, f"modules over {MAX_LINES} lines (split them, or add to " \
        "LONG_MODULES with the reason):\n" + "\n".join(found)


def test_the_allowlist_names_long_modules_that_exist() -> None:
    for relative, reason in LONG_MODULES.items():
        path = ROOT / relative
        assert path.is_file(), f"{relative} is in LONG_MODULES but does not exist"
        assert len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES, \
            f"{relative} is {MAX_LINES} lines or fewer now: drop it from LONG_MODULES"
        assert reason.strip(), f"{relative}: say why it may be long"
