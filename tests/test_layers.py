"""The architecture's rules, checked on every import in the package (top-level and inside
functions alike): layers import only layers below them, only the embedded backend imports the
simulator, attacks, defences and models never import a backend, nothing imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import avrobust

PACKAGE = Path(avrobust.__file__).parent

#: docs/architecture.md's layers, from the ground up: a module may import its own layer and
#: the layers below it.
LAYERS = (
    ("core", "runtime"),
    ("scenario",),
    ("sim",),
    ("export",),
    ("backends",),
    ("data",),
    ("models",),
    ("attacks",),
    ("defences",),
    ("training",),
    ("driving",),
    ("campaign",),
    ("evaluation",),
    ("report",),
    ("doctor", "demo"),
    ("cli", "__main__"),
)
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}
#: Modules outside sim/ that may import it: the embedded backend wraps the simulator.
SIM_USERS = {"avrobust.backends.embedded"}
#: Layers that take Frames and tensors and never see a backend.
NO_BACKEND = {"attacks", "defences", "models"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(name: str, source: str, is_package: bool) -> set[str]:
    """Every avrobust module ``name`` imports, relative imports resolved."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            # ``from avrobust import cli`` imports the module avrobust.cli
            out.update(f"{mod}.{a.name}" for a in node.names if mod == "avrobust")
    return {m for m in out if m == "avrobust" or m.startswith("avrobust.")}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """``sources``: module name -> (source text, is a package). One line per broken rule."""
    found = []
    for name, (source, is_package) in sorted(sources.items()):
        own = layer(name)
        for target in sorted(imports(name, source, is_package)):
            other = layer(target)
            if other in ("", own):
                continue
            if own not in RANK or other not in RANK:
                found.append(f"{name} -> {target}: a layer the architecture does not name")
            elif RANK[other] > RANK[own]:
                found.append(f"{name} -> {target}: imports a layer above its own ({own})")
            if other == "sim" and name not in SIM_USERS:
                found.append(f"{name} -> {target}: only the embedded backend imports sim/")
            if other == "backends" and own in NO_BACKEND:
                found.append(f"{name} -> {target}: {own} never import a backend")
            if other in ("cli", "__main__") and own not in ("cli", "__main__"):
                found.append(f"{name} -> {target}: nothing imports the command line")
    return found


def package_sources() -> dict[str, tuple[str, bool]]:
    return {
        module_name(p, PACKAGE): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
        for p in PACKAGE.rglob("*.py")
    }


def test_every_import_points_down_the_layers():
    assert violations(package_sources()) == []


def test_a_planted_import_against_the_layers_is_caught():
    planted = {
        "avrobust.core.planted": ("from avrobust.campaign.runner import run_job\n", False),
        "avrobust.attacks.planted": ("def f():\n    from avrobust.backends import base\n", False),
        "avrobust.defences.planted": ("from ..sim.scene import SceneDescription\n", False),
        "avrobust.report.planted": ("import avrobust.cli.base\n", False),
        "avrobust.scenario.planted": ("from avrobust import data\n", False),
    }
    found = violations({**package_sources(), **planted})
    assert len(found) == 6, found
    assert any("core.planted" in f and "above" in f for f in found)
    assert any("attacks.planted" in f and "never import a backend" in f for f in found)
    assert any("defences.planted" in f and "only the embedded backend" in f for f in found)
    assert any("report.planted" in f and "command line" in f for f in found)
    assert any("scenario.planted" in f and "above" in f for f in found)


def test_no_module_is_over_600_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}
