"""Write docs/scenario-reference.md from the pydantic models, so the reference lists every field
the loader accepts (a test checks that the file is current)."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from avrobust.scenario import campaign as camp
from avrobust.scenario import schema

OUT = Path(__file__).resolve().parents[1] / "docs" / "scenario-reference.md"

SECTIONS = [
    ("Scenario file", schema.Scenario),
    ("map", schema.MapSpec),
    ("pose (map.origin, ego.pose, vehicles[].pose, pedestrians[].pose)", schema.PoseSpec),
    ("ego", schema.EgoSpec),
    ("sensors", schema.SensorsSpec),
    ("sensors.camera", schema.CameraFields),
    ("sensors.lidar", schema.LidarFields),
    ("mount (sensors.camera.mount, sensors.lidar.mount)", schema.MountSpec),
    ("signs[]", schema.SignSpec),
    ("vehicles[]", schema.VehicleSpec),
    ("pedestrians[]", schema.PedestrianSpec),
    ("surfaces[]", schema.SurfaceSpec),
    ("weather", schema.WeatherSpec),
    ("episode", schema.EpisodeFields),
    ("driving", schema.DrivingFields),
    ("targets[]", schema.TargetSpec),
    ("targets[].encounter", schema.EncounterSpec),
    ("Campaign file", camp.Campaign),
    ("sweep", camp.Sweep),
    ("models[], attacks[], defences[]", camp.ComponentRef),
    ("carla", camp.CarlaSettings),
    ("acceptance[]", camp.Criterion),
]


def _type(annotation) -> str:
    text = str(annotation)
    for prefix in (
        "typing.",
        "avrobust.scenario.schema.",
        "avrobust.scenario.campaign.",
        "<class '",
        "'>",
    ):
        text = text.replace(prefix, "")
    return text.replace("|", "or").replace("NoneType", "none")


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{value!r}`" if value not in (None, [], {}) else ("none" if value is None else "empty")


def _limits(field) -> str:
    out = []
    for m in field.metadata:
        for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(m, key, None) is not None:
                out.append(f"{sym} {getattr(m, key)}")
    return ", ".join(out)


def render() -> str:
    lines = [
        "# Scenario and campaign file reference",
        "",
        "Generated from the validating models by `python tools/gen_scenario_reference.py`; "
        "see [scenarios.md](scenarios.md) for how to write them. Lengths are metres, speeds "
        "m/s, angles degrees, times seconds.",
        "",
    ]
    for title, model in SECTIONS:
        doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
        lines += [
            f"## {title}",
            "",
            doc,
            "",
            "| field | type | default | limits | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        hints = typing.get_type_hints(model)
        for name, field in model.model_fields.items():
            desc = field.description or ""
            lines.append(
                f"| `{name}` | {_type(hints.get(name, field.annotation))} | "
                f"{_default(field)} | {_limits(field)} | {desc} |"
            )
        lines.append("")
    lines += _components()
    return "\n".join(lines)


def _components() -> list[str]:
    """The names a campaign's models, attacks and defences may use, from the registry."""
    from avrobust.campaign.registry import describe

    lines = [
        "## Registered components",
        "",
        "The `name` of a `models[]`, `attacks[]` or `defences[]` entry, with its `params`.",
        "",
        "| kind | name | what it is |",
        "| --- | --- | --- |",
    ]
    for kind in ("model", "attack", "defence"):
        lines += [f"| {kind} | `{c.name}` | {c.description} |" for c in describe(kind)]
    lines.append("")
    return lines


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}")
