"""The code's shape holds: folders are roles and dependencies point one way.

    recsvc.core                      imports nothing else of recsvc
    recsvc.analytics                 core (statistics, attribution, KPIs from logs)
    recsvc.stores                    core
    recsvc.settings, recsvc.cli      stores, core
    recsvc.service                   core, analytics, stores, settings, cli
    recsvc.jobs                      core, analytics, stores, settings, cli
    training                         core, stores, jobs, settings, cli (never the service)

Every import counts, at module level or inside a function. And no import cycles, between
modules or between these roles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("recsvc", "training")
ALLOWED = {
    "recsvc.core": {"recsvc.core"},
    "recsvc.analytics": {"recsvc.core", "recsvc.analytics"},
    "recsvc.stores": {"recsvc.core", "recsvc.stores"},
    "recsvc.settings": {"recsvc.core", "recsvc.stores"},
    "recsvc.cli": {"recsvc", "recsvc.core"},
    "recsvc.service": {"recsvc", "recsvc.core", "recsvc.analytics", "recsvc.stores",
                       "recsvc.settings", "recsvc.cli", "recsvc.service"},
    "recsvc.jobs": {"recsvc.core", "recsvc.analytics", "recsvc.stores", "recsvc.settings",
                    "recsvc.cli", "recsvc.jobs"},
    "recsvc.__main__": {"recsvc.cli"},
    "recsvc": set(),
    "training": {"recsvc", "recsvc.core", "recsvc.stores", "recsvc.jobs", "recsvc.settings",
                 "recsvc.cli", "training"},
}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules `name` imports (resolved to modules that exist)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def role(module: str) -> str:
    for prefix in sorted(ALLOWED, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    raise AssertionError(f"{module} belongs to no role")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, name, known) for name, path in found.items()}


def test_every_import_points_the_allowed_way(graph) -> None:
    wrong = [f"{module} imports {target}" for module, targets in graph.items()
             for target in targets if role(target) not in ALLOWED[role(module)]]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles(graph) -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    # Between roles too: a role that imports another is never imported back by it.
    roles = {(role(m), role(t)) for m, targets in graph.items() for t in targets
             if role(m) != role(t) and role(m) != "recsvc" and role(t) != "recsvc"}
    assert not {(a, b) for a, b in roles if (b, a) in roles}


def test_modules_stay_small_or_say_why() -> None:
    long = []
    for name, path in modules().items():
        lines = path.read_text().count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and "long because" not in docstring.lower():
            long.append(f"{name}: {lines} lines")
    assert not long, long


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The graph is only as good as its parsing: a late import inside a function and a
    relative import are both found."""
    code = tmp_path / "m.py"
    code.write_text("from . import b\n\ndef f():\n    from recsvc.service.app import x\n")
    found = imports(code, "recsvc.core.m", {"recsvc.core.b", "recsvc.service.app",
                                             "recsvc.core.m"})
    assert found == {"recsvc.core.b", "recsvc.service.app"}
