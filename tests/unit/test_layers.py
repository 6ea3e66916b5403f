"""Layers import downwards only (docs/architecture.md): a package may import the core and lower layers.

The ranks mirror the layer diagram. A package of rank N imports only packages of rank < N (and
itself); two packages on the same rank never import each other.
"""

import ast
from pathlib import Path

import pytest

import edgefleet

RANKS: dict[str, int] = {
    # the core
    "errors": 0,
    "config": 1,
    "telemetry": 2,
    "maintenance": 2,  # the maintenance-window contract shared by the server and the agent
    # the inventory everything sizes itself from
    "probe": 3,
    # OS-facing mechanisms
    "tuning": 4,
    "sandbox": 4,
    "bundle": 4,
    # services
    "runtime": 5,
    "server": 5,
    "image": 6,
    "pipeline": 6,
    "agent": 6,
    # thin edges
    "serving": 7,
    "server.api": 7,  # with server/ui/, the same HTTP edge of the control plane
    "testing": 8,
    "up": 8,  # runs the whole system on one machine: starts the programs, talks to them
    "cli": 9,
    "__main__": 10,
}

SRC = Path(edgefleet.__file__).parent


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "edgefleet" or len(parts) < 2:
        return None
    if parts[1] == "server" and len(parts) > 2 and parts[2] in {"api", "ui"}:
        return "server.api"
    return parts[1]


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def _violations() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "proto" in path.parts:
            continue
        module = ".".join(("edgefleet", *path.relative_to(SRC).with_suffix("").parts))
        me = _package(module)
        if me is None or me == "__init__":
            continue
        for target in sorted(_imports(path)):
            other = _package(target)
            if other is None or other == me:
                continue
            if me not in RANKS or other not in RANKS:
                found.append(f"{module}: package {me if me not in RANKS else other!r} has no layer rank")
            elif RANKS[other] >= RANKS[me]:
                found.append(f"{module} (rank {RANKS[me]}) imports {target} (rank {RANKS[other]})")
    return found


@pytest.mark.unit
def test_layers_import_downwards_only() -> None:
    """No module imports a package on its own layer or above it."""
    assert _violations() == []
