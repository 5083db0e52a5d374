"""The test suite's own layout (tests/support/README.md): fixtures live in conftests, helpers in tests/support, and
no test module imports from a conftest (pytest loads conftests itself; importing one runs it twice under two names)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_no_module_imports_a_conftest() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[-1] == "conftest"
    ]
    assert offenders == []


def test_support_modules_define_no_fixtures() -> None:
    """A fixture in a support module is only found by tests that import it by name (or a pytest_plugins list);
    in a conftest it is found by every test of that level and below."""
    offenders = [
        str(path.relative_to(TESTS))
        for path in sorted((TESTS / "support").rglob("*.py"))
        if "pytest.fixture" in path.read_text()
    ]
    assert offenders == []


def test_every_support_module_is_listed_in_the_readme() -> None:
    readme = (TESTS / "support" / "README.md").read_text()
    modules = [p for p in sorted((TESTS / "support").glob("*.py")) if p.name != "__init__.py"]
    modules += [p for p in sorted((TESTS / "support").iterdir()) if p.is_dir() and (p / "__init__.py").exists()]
    missing = [p.name for p in modules if f"`{p.name}" not in readme]
    assert modules and missing == []
