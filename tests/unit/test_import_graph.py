"""The shape of the code, checked so it cannot decay: the packages form layers that import only
downwards, and no module imports another that (directly or not) imports it back. Every import
counts, also those inside functions and under ``TYPE_CHECKING``: an import placed in a
function to dodge a cycle is still a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "activities", "plugins")

# Bottom to top. A module may import its own layer and the layers below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("engine.base",)),
    ("language", ("engine.language",)),
    ("runtime", ("engine.runtime",)),
    ("plugins", ("plugins",)),
    ("temporal", ("engine.temporal",)),
    ("activities", ("activities",)),
    ("hosting", ("engine.hosting",)),
    ("client", ("engine.client", "engine.sync", "engine")),
    ("interfaces", ("engine.cli", "engine.studio", "worker")),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {"worker": REPO / "worker.py"}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (a package's attribute import resolves to the
    submodule when there is one), or None for a third-party module."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := _resolve(alias.name)) is not None:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # The submodule when ``alias`` names one, else the module ``base`` itself.
                target = _resolve(f"{base}.{alias.name}") if base else None
                if target is not None:
                    yield target, node.lineno


GRAPH: dict[str, dict[str, int]] = {
    module: {target: line for target, line in _imports(module, path) if target != module}
    for module, path in MODULES.items()
}


def _layer(module: str) -> int:
    best = -1, -1  # (length of the matching prefix, layer index)
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = len(prefix), index
    assert best[1] >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return best[1]


def test_every_module_belongs_to_a_layer() -> None:
    assert len(MODULES) > 50
    for module in MODULES:
        _layer(module)


def test_layers_import_only_downwards() -> None:
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        f" at line {line}"
        for module, targets in GRAPH.items()
        for target, line in targets.items()
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(GRAPH):
        if root in index:
            continue
        work = [(root, iter(sorted(GRAPH[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_check_sees_imports_inside_functions() -> None:
    """The graph is not blind to a lazy import (the CLI loads its commands lazily)."""
    assert "engine.hosting.embedded" in GRAPH["engine.cli.hosting"]
    assert any(target.startswith("engine.cli.") for target in GRAPH["engine.cli.parser"]) or (
        "engine.cli.parser" in GRAPH["engine.cli"]
    )


def test_the_pure_layers_know_nothing_of_temporal() -> None:
    """base, language and runtime test without a server: decisions that need Temporal (a
    patch, the clock, running a node) are passed in."""
    pure = ("engine.base", "engine.language", "engine.runtime")
    offenders = []
    for module, path in MODULES.items():
        if not module.startswith(pure):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{module}: {n}" for n in names if n.split(".")[0] == "temporalio"]
    assert offenders == []


def test_every_name_imported_from_a_project_package_exists() -> None:
    """``from engine import x`` passes mypy whatever ``x`` is (``engine`` answers unknown
    names lazily, PEP 562), and an import inside a function fails only when it runs: check
    every one here."""
    import importlib

    missing = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module not in MODULES:
                continue
            if MODULES[node.module].name != "__init__.py":
                continue  # names from a plain module are mypy's to check
            package = importlib.import_module(node.module)
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    continue
                try:
                    getattr(package, alias.name)
                except AttributeError:
                    missing.append(f"{module}:{node.lineno}: {node.module}.{alias.name}")
    assert missing == []
