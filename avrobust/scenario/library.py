"""The scenario library: load scenarios by name or path, list them."""

from __future__ import annotations

from pathlib import Path

from avrobust.scenario.loader import find_file, library_dir, load_model
from avrobust.scenario.schema import Scenario


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A validated scenario from a path (``.yaml``, or OpenSCENARIO ``.xosc``) or a library
    name."""
    p = Path(name_or_path)
    if p.suffix == ".xosc":
        from avrobust.scenario.openscenario import import_openscenario

        return import_openscenario(p).scenario
    return load_model(find_file(name_or_path, library_dir(), "scenario"), Scenario)


def scenario_names() -> list[str]:
    folder = library_dir()
    return sorted(f.stem for f in folder.glob("*.yaml")) if folder.is_dir() else []


def validate_files(paths: list[Path]) -> dict[Path, str | None]:
    """Validate each file; the error text for each one that fails, None for each that passes."""
    from avrobust.core.errors import AvrobustError

    out: dict[Path, str | None] = {}
    for p in paths:
        try:
            load_scenario(p)
            out[p] = None
        except AvrobustError as exc:
            out[p] = str(exc.format())
    return out
