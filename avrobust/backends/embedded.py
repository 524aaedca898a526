"""The embedded backend: wraps the built-in simulator (``avrobust.sim``), the only module outside
``sim/`` that imports it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from avrobust.backends.base import EpisodeSpec
from avrobust.core.errors import ConfigError
from avrobust.core.frame import Frame
from avrobust.sim.presets import PRESETS as SCENE_PRESETS
from avrobust.sim.scene import SceneDescription
from avrobust.sim.simulator import RawFrame, Simulator


def scene_names() -> list[str]:
    """Names of the built-in scenes."""
    return sorted(SCENE_PRESETS)


def resolve_scene(scene: str | SceneDescription) -> SceneDescription:
    if isinstance(scene, SceneDescription):
        return scene
    if scene not in SCENE_PRESETS:
        raise ConfigError(
            f"unknown scene {scene!r}", field="scene", allowed=", ".join(scene_names())
        )
    return SCENE_PRESETS[scene]


class EmbeddedBackend:
    """Runs episodes in the embedded simulator. Usable as a context manager."""

    name = "embedded"

    def __init__(self) -> None:
        self.episode: EpisodeSpec | None = None
        self.simulator: Simulator | None = None
        self.textures: dict[str, torch.Tensor] = {}

    def start(self, episode: EpisodeSpec) -> None:
        self.episode = episode
        self.simulator = Simulator(
            resolve_scene(episode.scene),
            episode.camera,
            episode.lidar,
            episode.weather,
            episode.seed,
        )
        self.textures = {}

    def _require(self) -> tuple[EpisodeSpec, Simulator]:
        if self.episode is None or self.simulator is None:
            raise RuntimeError("start() the backend before asking for frames")
        return self.episode, self.simulator

    def render(self, index: int, truth: bool = True) -> RawFrame:
        """Frame ``index`` of the episode with the renderers' own outputs."""
        ep, sim = self._require()
        t = ep.start_time + index / ep.rate
        pose = None
        if ep.ego_poses is not None:
            pose = torch.tensor(ep.ego_poses[index], dtype=torch.float64)
        return sim.render(t, index, self.textures or None, truth=truth, ego_pose=pose)

    def frames(self) -> Iterator[Frame]:
        ep, _ = self._require()
        for i in range(ep.frames):
            yield self.render(i).frame

    def surface_names(self) -> list[str]:
        _, sim = self._require()
        return list(sim.world.surfaces)

    def apply_texture(
        self, surface: str, texture: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        _, sim = self._require()
        if surface not in sim.world.surfaces:
            raise ConfigError(
                f"no attack surface named {surface!r} in this scene",
                field="surface",
                allowed=", ".join(sim.world.surfaces) or "none",
            )
        base = sim.world.materials[surface].texture
        tex = texture.to(torch.float32)
        if tex.shape[1:] != base.shape[1:]:
            tex = F.interpolate(
                tex[None], size=base.shape[1:], mode="bilinear", align_corners=False, antialias=True
            )[0]
        if mask is not None:
            m = F.interpolate(
                mask.to(torch.float32)[None],
                size=base.shape[1:],
                mode="bilinear",
                align_corners=False,
            )[0]
            tex = m * tex + (1 - m) * base
        self.textures[surface] = tex.clamp(0, 1)

    def close(self) -> None:
        self.simulator = None
        self.episode = None
        self.textures = {}

    def __enter__(self) -> EmbeddedBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
