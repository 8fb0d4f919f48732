"""The package's layers (docs/design.md, "Layers"): every import runs down the house, never
back up, and no modules import each other in a circle. Read from the code's own imports, so a
new import that runs back up fails here, naming it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "webhooks"

# Top to bottom. A module may import its own layer's modules and any layer below its own.
LAYERS: list[tuple[str, ...]] = [
    ("__init__",),                       # create_app: the composition root
    ("server", "operators"),             # gunicorn's side; console, API, CLI, probes
    ("intake",),                         # webhooks in
    ("delivery",),                       # recalls out: worker, gate, plan, leases
    ("bridge",),                         # what one app holds, and its accessor
    ("outbound",),                       # the only HTTP out
    ("mapping",),                        # the mapping language
    ("store", "timing"),                 # the only SQL; pure time rules
    ("observability", "crm"),            # counters and logs; CRM wire formats
    ("settings", "recall", "lifecycle", "reasons", "sandbox"),
]
RANK = {part: len(LAYERS) - i for i, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")
            if "migrations" not in path.parts}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports (a name imported from a package counts as
    its module when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in known:
                continue
            subs = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(subs or {target})
            if subs != {f"{target}.{alias.name}" for alias in node.names}:
                found.add(target)
    return found - {name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_is_in_a_layer() -> None:
    unplaced = sorted({layer_of(m) for m in modules()} - set(RANK))
    assert unplaced == [], f"add {unplaced} to LAYERS (docs/design.md, Layers)"


def test_no_import_runs_back_up() -> None:
    upward = [f"{importer} imports {imported}"
              for importer, targets in graph().items() for imported in sorted(targets)
              if layer_of(importer) != layer_of(imported)
              and RANK[layer_of(importer)] <= RANK[layer_of(imported)]]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_check_sees_an_upward_import() -> None:
    """The graph is read right: the store's modules import the lifecycle, and the receiver
    imports the bridge (if these were not seen, the checks above would pass on nothing)."""
    edges = graph()
    assert "webhooks.lifecycle" in edges["webhooks.store.events"]
    assert "webhooks.bridge" in edges["webhooks.intake.receiver"]
