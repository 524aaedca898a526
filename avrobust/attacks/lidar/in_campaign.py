"""LiDAR removal and spoofing as campaign attacks: every frame's sweep is attacked in flight,
before the victim sees it, so per-frame and per-encounter results come from the same runner,
store and report as every other attack.

The attacker is white-box against the campaign's (undefended) model, which must use the LiDAR
(``lidar-detector``, ``fusion-late`` or ``fusion-painting``). Removal hides the scenario's
first target within the stated budget in every frame (from ``start_frame`` on: an attacker who
switches on once the victim follows the car) where the target is ahead and the victim finds
it; other frames pass unchanged. Spoofing puts a phantom a fixed distance ahead of the ego in
every frame (the attacker rides along, as Cao et al. 2019's spoofer on a car in front does);
the phantom travels in the frame's metadata, and the runner records it as a target of its own
(``phantom``, a :class:`~avrobust.core.components.MadeTarget`) that the model is right about
when it does *not* report it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from avrobust.attacks.lidar.objective import FrameObjective
from avrobust.attacks.lidar.remove import remove
from avrobust.attacks.lidar.spoof import phantom_size, spoof
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.attacks.lidar.threat import LidarThreat, angle_window
from avrobust.core.boxes import Box3D
from avrobust.core.components import AttackBase, MadeTarget
from avrobust.core.errors import ConfigError
from avrobust.core.frame import Frame


def raw_victim(model: Any):
    """The differentiable network behind a campaign model that uses the LiDAR."""
    from avrobust.models.victims import FusionDetectorVictim, LidarDetectorVictim

    if isinstance(model, FusionDetectorVictim):
        return model.model
    if isinstance(model, LidarDetectorVictim):
        return model.detector.fn.model
    raise ConfigError(
        f"LiDAR attacks need a model that uses the LiDAR, not {getattr(model, 'name', model)!r}",
        field="models",
        allowed="lidar-detector, fusion-late, fusion-painting",
    )


class LidarRemovalAttack(AttackBase):
    name = "lidar-remove"

    def __init__(
        self,
        points: int = 250,
        method: str = "white-box",
        margin_deg: float = 3.0,
        start_frame: int = 0,
        fill_road: bool = False,
    ):
        self.points, self.method, self.margin = points, method, margin_deg
        self.start_frame, self.fill_road = start_frame, fill_road
        self.spec = None
        self.target_id: int | None = None

    def provenance(self) -> dict:
        return {
            "points": self.points,
            "method": self.method,
            "margin_deg": self.margin,
            "start_frame": self.start_frame,
            "fill_road": self.fill_road,
        }

    def prepare(self, backend: Any, scenario: Any) -> None:
        if scenario.sensors.lidar is None or not scenario.targets:
            raise ConfigError("lidar-remove needs a scenario with a LiDAR and a target")
        self.spec = scenario.sensors.lidar.to_spec()
        self.target_id = backend.object_id(scenario.targets[0].object)

    def threat(self, box: Box3D) -> LidarThreat:
        x, y = float(box.center[0, 0]), float(box.center[0, 1])
        half = float(box.size[0, :2].norm()) / 2
        return LidarThreat(
            points=self.points, azimuth=angle_window(x, y, half, self.margin), mode="remove"
        )

    def perturb(self, frame: Frame, model: Any) -> Frame:
        t = frame.truth
        hit = (t.ids == self.target_id).nonzero().flatten()
        if frame.points is None or len(hit) == 0 or frame.index < self.start_frame:
            return frame
        b = t.boxes_3d[hit[:1]]
        box = Box3D(b.center.float(), b.size.float(), b.yaw.float())
        if float(box.center[0, 0]) <= 0:
            return frame
        sweep = LidarSweep.from_frame(frame, self.spec)
        res = remove(
            FrameObjective(raw_victim(model), frame),
            sweep,
            self.spec,
            self.threat(box),
            box,
            self.method,
        )
        keep = torch.isin(sweep.ray, res.sweep.ray)
        points, rays = sweep.points[keep], sweep.ray[keep]
        instance = frame.point_instance[keep] if frame.point_instance is not None else None
        filled = 0
        if self.fill_road:  # adaptive against the void check: the road the car hid comes back
            road, road_rays = road_returns(
                self.spec, res.removed, float(frame.calibration.lidar_pose[2, 3])
            )
            filled = len(road_rays)
            points, rays = torch.cat([points, road]), torch.cat([rays, road_rays])
            if instance is not None:
                instance = torch.cat([instance, torch.zeros(filled, dtype=instance.dtype)])
        return replace(
            frame,
            points=points,
            point_ring=rays // self.spec.columns,
            point_instance=instance,
            metadata={
                **frame.metadata,
                "lidar_attack": {"removed": len(res.removed), "road_filled": filled},
            },
        )


def road_returns(spec, rays: torch.Tensor, height: float, intensity: float = 0.3):
    """Returns on a flat road ``height`` metres below the sensor for those of ``rays`` that
    point down and reach it within range: what those rays would see without the object. An
    attacker who injects them (as spoofing does) hides the void a removal leaves, at the cost
    of as many injected returns."""
    d = spec.ray_directions()[rays].float()
    down = d[:, 2] < -1e-6
    t = torch.where(down, height / (-d[:, 2]).clamp(min=1e-6), torch.inf)
    ok = t <= spec.range
    pts = d[ok] * t[ok, None]
    return torch.cat([pts, torch.full((len(pts), 1), intensity)], 1), rays[ok]


PHANTOM = "phantom"  # the target name of the spoofed object in the results


class LidarSpoofAttack(AttackBase):
    """A phantom ``category`` whose rear face is ``distance`` m ahead of the LiDAR and
    ``lateral`` m to its left, spoofed with ``points`` returns in every frame from
    ``start_frame`` on, optimised against the campaign's model (``method``, ``steps``)."""

    name = "lidar-spoof"

    def __init__(
        self,
        distance: float = 7.5,
        lateral: float = 0.0,
        category: str = "car",
        points: int = 60,
        method: str = "white-box",
        steps: int = 30,
        start_frame: int = 0,
    ):
        phantom_size(category)  # fail at set-up, not in the first frame
        if distance <= 0:
            raise ConfigError(f"distance must be positive, got {distance}", field="distance")
        self.distance, self.lateral, self.category = distance, lateral, category
        self.points, self.method, self.steps, self.start_frame = points, method, steps, start_frame
        self.spec = None

    def provenance(self) -> dict:
        return {
            "distance": self.distance,
            "lateral": self.lateral,
            "category": self.category,
            "points": self.points,
            "method": self.method,
            "steps": self.steps,
            "start_frame": self.start_frame,
        }

    def prepare(self, backend: Any, scenario: Any) -> None:
        if scenario.sensors.lidar is None:
            raise ConfigError("lidar-spoof needs a scenario with a LiDAR", field="sensors.lidar")
        self.spec = scenario.sensors.lidar.to_spec()

    def perturb(self, frame: Frame, model: Any) -> Frame:
        if frame.points is None or frame.index < self.start_frame:
            return frame
        length, width, _ = phantom_size(self.category)
        x, y = self.distance + length / 2, self.lateral
        threat = LidarThreat(points=self.points, azimuth=angle_window(x, y, width / 2 + 1.0, 3.0))
        sweep = LidarSweep.from_frame(frame, self.spec)
        res = spoof(
            FrameObjective(raw_victim(model), frame),
            sweep,
            self.spec,
            threat,
            x,
            y,
            self.category,
            self.method,
            self.steps,
        )
        created = torch.isin(res.sweep.ray, res.rays)
        instance = None
        if frame.point_instance is not None:  # the phantom's returns belong to no object
            kept = torch.isin(sweep.ray, res.sweep.ray[~created])
            instance = torch.cat(
                [frame.point_instance[kept], torch.zeros(int(created.sum()), dtype=torch.long)]
            )
        b = res.phantom
        return replace(
            frame,
            points=res.sweep.points.detach(),
            point_ring=res.sweep.ray // self.spec.columns,
            point_instance=instance,
            metadata={
                **frame.metadata,
                "lidar_attack": {
                    "spoofed": int(created.sum()),
                    "phantom": {
                        "category": self.category,
                        "box": [*b.center[0].tolist(), *b.size[0].tolist(), float(b.yaw[0])],
                    },
                },
            },
        )

    def made_targets(self, frame: Frame) -> list[MadeTarget]:
        """The phantom this attack spoofed into ``frame`` (none before ``start_frame``)."""
        made = frame.metadata.get("lidar_attack", {})
        if "phantom" not in made:
            return []
        v = torch.tensor(made["phantom"]["box"], dtype=torch.float64)
        box = Box3D(v[None, :3], v[None, 3:6], v[6:7])
        return [MadeTarget(PHANTOM, self.category, box, int(made.get("spoofed", 0)))]
