"""Every third-party module the runtime package imports is a declared dependency of the distribution, and the
runtime package never imports the dev tools (a production image installs neither)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "plugins" / "cxsync"
# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {
    "airflow": "apache-airflow",
    "yaml": "pyyaml",
    "dateutil": "python-dateutil",
    "requests_oauthlib": "requests-oauthlib",
    "psycopg2": "psycopg2-binary",
    "stdnum": "python-stdnum",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _runtime_imports() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(RUNTIME.rglob("*.py")):
        for name in _imports(path):
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + list(project["optional-dependencies"]["postgres"])
    return {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower() for spec in specs}


def test_every_runtime_import_is_a_declared_dependency():
    declared = _declared()
    missing = {
        name: where
        for name, where in _runtime_imports().items()
        if name not in sys.stdlib_module_names
        and name != "cxsync"
        and DISTRIBUTIONS.get(name, name).lower().replace("_", "-") not in declared
    }
    assert not missing, f"imported by the runtime package but not in pyproject's dependencies: {missing}"


def test_the_runtime_package_does_not_import_the_dev_tools():
    assert "cxsync_dev" not in _runtime_imports()
