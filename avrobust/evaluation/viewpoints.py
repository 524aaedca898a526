"""Viewpoint sweeps for optimising and evaluating physical attacks: one still frame per
combination of distance to the scenario's first target, the target sign's angle, weather and
the ego's lateral offset, optionally with textures painted on attack surfaces first."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.embedded import EmbeddedBackend
from avrobust.core.attachment import Attachment
from avrobust.core.frame import Frame
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.scenario.campaign import apply_conditions
from avrobust.scenario.library import load_scenario
from avrobust.scenario.schema import Scenario


@dataclass(frozen=True)
class Viewpoint:
    distance: float
    angle: float
    weather: str
    lateral: float


@dataclass
class Sweep:
    """Viewpoints around the scenario's first target: distances (m), the sign's angle
    (degrees; a target that is not a sign keeps its heading, so leave ``angles`` at one
    value), weather presets and the ego's lateral offsets in its lane (m)."""

    distances: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 25.0)
    angles: tuple[float, ...] = (0.0, 15.0, 30.0)
    weathers: tuple[str, ...] = ("ClearNoon", "CloudyNoon", "Dusk")
    laterals: tuple[float, ...] = (-0.5, 0.5)

    def viewpoints(self) -> list[Viewpoint]:
        return [
            Viewpoint(*v)
            for v in itertools.product(self.distances, self.angles, self.weathers, self.laterals)
        ]


@dataclass
class SweepFrames:
    viewpoints: list[Viewpoint]
    frames: list[Frame]
    surface_textures: dict[str, torch.Tensor] = field(default_factory=dict)  # as drawn


def view_backend(
    scenario: Scenario,
    vp: Viewpoint,
    camera: CameraSpec,
    lidar: LidarSpec | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmbeddedBackend:
    """A started backend for one viewpoint of ``scenario``: the target at the viewpoint's
    distance (and angle, for a sign), its weather, the ego standing still at its lateral
    offset; one frame. Close it when done (it is a context manager)."""
    is_sign = bool(scenario.targets) and scenario.targets[0].object in {
        s.name for s in scenario.signs
    }
    conditions = {"distance": vp.distance, "weather": vp.weather}
    if is_sign:  # only a sign turns; other targets keep their heading
        conditions["angle"] = vp.angle
    sc = apply_conditions(scenario, conditions)
    sc = sc.model_copy(
        update={"ego": sc.ego.model_copy(update={"speed": 0.0, "lateral_offset": vp.lateral})}
    )
    backend = EmbeddedBackend(attachments)
    backend.start(EpisodeSpec.from_scenario(sc, camera=camera, lidar=lidar, frames=1))
    return backend


def render_sweep(
    scenario: str | Scenario,
    sweep: Sweep,
    camera: CameraSpec,
    textures: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    progress: Callable[[int], None] | None = None,
    lidar: LidarSpec | None = None,
    attachments: Sequence[Attachment] = (),
) -> SweepFrames:
    """One frame per viewpoint, the ego standing still; ``textures`` maps surface names to
    ``(texture, mask)`` painted on them in the backend first; ``lidar`` adds a sweep;
    ``attachments`` are fixed to their hosts in every view.
    ``scenario``: a library name or file, or a loaded scenario."""
    base = load_scenario(scenario) if isinstance(scenario, str) else scenario
    frames, vps = [], []
    own: dict[str, torch.Tensor] = {}
    for vp in sweep.viewpoints():
        with view_backend(base, vp, camera, lidar, attachments) as backend:
            if not own:
                own = {n: backend.surface_texture(n) for n in backend.surface_names()}
            for name, (tex, mask) in (textures or {}).items():
                backend.apply_texture(name, tex, mask)
            frames.append(next(iter(backend.frames())))
        vps.append(vp)
        if progress:
            progress(1)
    return SweepFrames(vps, frames, own)


def success_by(
    rows: list[tuple[Viewpoint, bool, bool]], sweep: Sweep, key: str
) -> dict[str, dict[str, float]]:
    """Per value of ``key`` (``distance``, ``angle`` or ``weather``) of the sweep: views and
    success rates through the compositor and re-rendered, from ``(viewpoint, compositor hit,
    re-rendered hit)`` rows."""
    values = {"distance": sweep.distances, "angle": sweep.angles, "weather": sweep.weathers}[key]
    unit = {"distance": " m", "angle": " deg", "weather": ""}[key]
    out = {}
    for value in values:
        sub = [r for r in rows if getattr(r[0], key) == value]
        n = len(sub)
        label = value if key == "weather" else f"{value:g}{unit}"
        out[label] = {
            "views": n,
            "compositor": sum(r[1] for r in sub) / max(n, 1),
            "rendered": sum(r[2] for r in sub) / max(n, 1),
        }
    return out
