"""Imports flow one way. The back office (the Django admin, with its search, pages and support tools) is the top floor:
it reads and calls every app, and no app imports it. Provisioning works below checkout: it takes the order it is given
and never imports checkout. No module imports one that imports it back, directly or in a ring: a task is sent by name,
never by importing it into the services it calls. Read from the source (every import statement, those inside
functions too)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "billing", "catalog", "checkout", "core", "provisioning")
# Every package of ours whose modules may import each other: the apps, the back office, settings and the sandbox.
PACKAGES = (*APPS, "backoffice", "config", "stripe_sandbox")


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported module) for every import in the package's modules, migrations left out."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((str(path.relative_to(ROOT)), node.lineno, node.module))
    return found


def _reaching(package: str, target: str) -> list[str]:
    return [
        f"{file}:{line} imports {module}"
        for file, line, module in _imports(package)
        if module == target or module.startswith(f"{target}.")
    ]


@pytest.mark.parametrize("app", APPS)
def test_no_app_imports_the_back_office(app):
    assert _reaching(app, "backoffice") == []


def test_provisioning_never_imports_checkout():
    assert _reaching("provisioning", "checkout") == []


def test_the_rule_sees_an_import_inside_a_function(tmp_path, monkeypatch):
    # The check itself can fail: a lazy import is found as well as one at the top.
    package = tmp_path / "demo"
    package.mkdir()
    (package / "module.py").write_text("def later():\n    from backoffice.search import global_search\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)

    assert _reaching("demo", "backoffice") == ["demo/module.py:2 imports backoffice.search"]


def _module_graph(packages) -> dict[str, set[str]]:
    """Which of our modules each of our modules imports (at the top or inside a function), relative imports resolved
    and `from package import module` counted as importing the module."""
    modules = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach each other through imports (strongly connected components of two or more)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert _cycles(_module_graph(PACKAGES)) == []


def test_the_cycle_rule_sees_a_ring_closed_by_an_import_inside_a_function(tmp_path, monkeypatch):
    package = tmp_path / "demo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "services.py").write_text("from demo.outbox import send\n")
    (package / "outbox.py").write_text("from . import tasks\n")
    (package / "tasks.py").write_text("def run():\n    from demo.services import work\n")
    (package / "selectors.py").write_text("from demo import services\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)

    assert _cycles(_module_graph(["demo"])) == [["demo.outbox", "demo.services", "demo.tasks"]]
