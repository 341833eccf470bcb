"""The package's import graph, read from the source with ast: no cycle among module-level imports,
no lower floor importing a higher one (module-level or inside a function), connectors and the
engine kept free of what they must not know. A newcomer reads the architecture in FLOORS below.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

PACKAGE = Path(__file__).resolve().parents[1] / "sheetsync"

#: lowest floor first; a module may import its own floor or lower ones, never a higher one.
#: An entry names a module or a package (the package covers everything under it).
FLOORS: list[tuple[str, ...]] = [
    # text: the one table of unseen characters and the header fold (rules, connectors, checks);
    # retry: the one bounded retry (the Google Sheets connector and alert webhooks)
    ("sheetsync", "sheetsync.errors", "sheetsync.model", "sheetsync.messages", "sheetsync.fileio",
     "sheetsync.logs", "sheetsync.progress", "sheetsync.text", "sheetsync.retry"),
    # backup.crypto is a leaf (key format, AES-GCM; errors only): layout_checks uses it to refuse
    # `encrypt: true` without a readable key at `check` time, so it sits here, not with backup
    ("sheetsync.rules", "sheetsync.connectors", "sheetsync.testing", "sheetsync.backup.crypto"),
    ("sheetsync.layout", "sheetsync.layout_checks", "sheetsync.layout_load"),
    ("sheetsync.store",),
    ("sheetsync.dedupe", "sheetsync.report", "sheetsync.backup"),
    ("sheetsync.engine",),
    ("sheetsync.archive", "sheetsync.alerts", "sheetsync.status", "sheetsync.export",
     "sheetsync.scheduler", "sheetsync.report_html", "sheetsync.demo"),
    ("sheetsync.cli", "sheetsync.__main__"),
]

#: third-party packages that belong to one connector, never to the engine
CONNECTOR_LIBRARIES = {"openpyxl", "gspread", "xlwings", "python_calamine", "google"}
#: what a connector may import from sheetsync besides its own package
CONNECTOR_MAY_USE = {"sheetsync.errors", "sheetsync.model", "sheetsync.fileio", "sheetsync.text",
                     "sheetsync.retry"}


class Import(NamedTuple):
    source: str      # importing module
    target: str      # imported module (a submodule when `from pkg import submodule`)
    line: int
    top: bool        # module level (runs on import), else inside a function


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk(node: ast.AST, top: bool):
    """Import nodes with whether they run at import time; TYPE_CHECKING blocks never run."""
    for child in ast.iter_child_nodes(node):
        if _type_checking(child):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, top
        inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, inner)


def imports_of(name: str) -> list[Import]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node, top in _walk(ast.parse(path.read_text(encoding="utf-8")), True):
        if isinstance(node, ast.Import):
            found += [Import(name, a.name, node.lineno, top) for a in node.names]
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        target = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            found.append(Import(name, sub if sub in MODULES else target, node.lineno, top))
    return found


def all_imports() -> list[Import]:
    return [i for name in sorted(MODULES) for i in imports_of(name)]


def floor_of(name: str) -> int | None:
    best, best_len = None, -1
    for level, entries in enumerate(FLOORS):
        for entry in entries:
            if (name == entry or name.startswith(entry + ".")) and len(entry) > best_len:
                best, best_len = level, len(entry)
    return best


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def internal(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.target in MODULES and i.target != i.source]


def test_every_module_has_a_floor():
    assert [name for name in MODULES if floor_of(name) is None] == []


def test_module_level_imports_form_no_cycle():
    edges: dict[str, set[str]] = {}
    for i in internal(all_imports()):
        if i.top:
            edges.setdefault(i.source, set()).add(i.target)
    assert _cycles(edges) == []


def test_function_level_imports_form_no_cycle_either():
    """A lazy import inside a function hides a cycle instead of breaking it."""
    edges: dict[str, set[str]] = {}
    for i in internal(all_imports()):
        edges.setdefault(i.source, set()).add(i.target)
    assert _cycles(edges) == []


def test_no_lower_floor_imports_a_higher_one():
    upward = [f"{i.source}:{i.line} imports {i.target}" for i in internal(all_imports())
              if floor_of(i.target) > floor_of(i.source)]
    assert upward == []


def test_connectors_import_only_model_errors_and_their_own_package():
    bad = [f"{i.source}:{i.line} imports {i.target}" for i in all_imports()
           if i.source.startswith("sheetsync.connectors") and i.target.startswith("sheetsync")
           and not i.target.startswith("sheetsync.connectors") and i.target not in CONNECTOR_MAY_USE]
    assert bad == []


def test_the_memory_fake_does_not_import_a_real_connector():
    """The fake shares the protocol's helpers (connectors/__init__, grid), never a real source's code."""
    from sheetsync.connectors import REGISTRY
    real = {target.partition(":")[0] for kind, target in REGISTRY.items() if kind != "memory"}
    bad = [i.target for i in imports_of("sheetsync.connectors.memory")
           if any(i.target == r or i.target.startswith(r + ".") for r in real)]
    assert bad == []


def test_the_engine_imports_no_spreadsheet_library():
    bad = [f"{i.source}:{i.line} imports {i.target}" for i in all_imports()
           if i.source.startswith("sheetsync.engine")
           and i.target.split(".")[0] in CONNECTOR_LIBRARIES]
    assert bad == []


def test_the_walker_sees_a_cycle_and_an_upward_import():
    """The checks above would pass on an empty graph; these prove they can fail."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert floor_of("sheetsync.cli.snapshots") > floor_of("sheetsync.status") > floor_of("sheetsync.layout")
    status = imports_of("sheetsync.status")
    assert any(i.target == "sheetsync.layout" and i.top for i in status)


def test_only_the_store_talks_to_sqlite():
    """Every SQL statement lives in store/ (the backup's dump and rebuild included)."""
    bad = [f"{i.source}:{i.line}" for i in all_imports()
           if i.target == "sqlite3" and not i.source.startswith("sheetsync.store")]
    assert bad == []


#: concepts that lived twice (issue 14): each name is bound at module level in exactly one module
ONE_HOME = {"EXIT_FOR_OUTCOME": "sheetsync.model", "LEASE_SECONDS": "sheetsync.engine.lease",
            "UNSEEN": "sheetsync.text", "fold_header": "sheetsync.text", "new_run_id": "sheetsync.engine.lease",
            "parse_retry_after": "sheetsync.retry", "_retry_after": None}


def _module_level_names(name: str) -> set[str]:
    found: set[str] = set()
    for node in ast.parse(MODULES[name].read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found.update(t.id for t in targets if isinstance(t, ast.Name))
    return found


def test_each_shared_concept_is_defined_once():
    homes = {concept: sorted(name for name in MODULES if concept in _module_level_names(name))
             for concept in ONE_HOME}
    assert homes == {concept: [home] if home else [] for concept, home in ONE_HOME.items()}
