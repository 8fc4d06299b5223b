"""The house rules of imports, read from the source (no product code runs except the pure
rating package, imported in a fresh interpreter):

- `pipelines.rating` imports nothing of Dagster, DuckDB, Polars, httpx or Stripe;
- the product packages (pipelines, assets, sql) never import devkit, which is not in the wheel;
- no import cycle among the modules of pipelines/ and assets/ (imports inside functions count;
  those under `if TYPE_CHECKING:` do not).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.environment import REPO

PRODUCT_PACKAGES = ("pipelines", "assets", "sql")
CYCLE_FREE_PACKAGES = ("pipelines", "assets")
NOT_IN_PURE_RULES = ("dagster", "duckdb", "polars", "httpx", "stripe")


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a source file under REPO, and whether it is a package's __init__."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def runtime_imports(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """Each import statement outside `if TYPE_CHECKING:` blocks, at any depth, as (imported
    module, names imported from it, line); relative imports resolved to absolute names."""
    name, is_package = module_name(path)
    here = name.split(".") if is_package else name.split(".")[:-1]
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"), str(path))]
    while pending:
        node = pending.pop()
        if is_type_checking_block(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, [alias.name for alias in node.names], node.lineno
        pending.extend(ast.iter_child_nodes(node))


def sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (REPO / package).rglob("*.py"))


def test_pure_rating_rules_import_no_engine_or_http_client() -> None:
    """Every module of pipelines.rating imported in a fresh interpreter leaves the engines
    and HTTP clients unloaded."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        "import pipelines.rating as rating\n"
        "for module in pkgutil.walk_packages(rating.__path__, 'pipelines.rating.'):\n"
        "    importlib.import_module(module.name)\n"
        f"print(json.dumps(sorted(m.split('.')[0] for m in sys.modules\n"
        f"                        if m.split('.')[0] in {NOT_IN_PURE_RULES!r})))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(set(json.loads(done.stdout))) == [], (
        "pipelines.rating must stay pure, yet importing it loads these")


def test_product_packages_never_import_devkit() -> None:
    """devkit (the local Stripe, ERP, sample data, demo) is not in the wheel: a product import
    of it would fail on an installed machine."""
    offending = [f"{path.relative_to(REPO)}:{line} imports {module}"
                 for path in sources(*PRODUCT_PACKAGES)
                 for module, _, line in runtime_imports(path)
                 if module == "devkit" or module.startswith("devkit.")]
    assert offending == []


def import_graph(*packages: str) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports (`from a import b` counts as importing
    a.b when a.b is a module, else a)."""
    paths = {module_name(path)[0]: path for path in sources(*packages)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets = set()
        for module, names, _ in runtime_imports(path):
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in paths]
            targets.update(submodules)
            if len(submodules) < len(names) or not names:
                targets.add(module)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, sorted for a stable
    answer)."""
    state: dict[str, str] = {}   # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_import_cycle_in_pipelines_and_assets() -> None:
    cycle = find_cycle(import_graph(*CYCLE_FREE_PACKAGES))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
