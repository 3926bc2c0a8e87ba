"""Imports flow one way. The back office (the Django admin, with its search, pages and support tools) is the top floor:
it reads and calls every app, and no app imports it. Provisioning works below checkout: it takes the order it is given
and never imports checkout. Read from the source (every import statement, those inside functions too)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "billing", "catalog", "checkout", "core", "provisioning")


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
