"""The adversarial object end to end (``avrobust attack lidar-object``): its shape against a
LiDAR-using victim, its texture against the camera detector, and a judgement the way it would
meet the car: re-rendered in the backend.

Each held-out view is rendered three ways by the embedded simulator: without the object, with
the object in plain grey, and with the object and its texture; both sensors see it (the LiDAR
casts its rays at the object's triangles, the camera draws its texture, shading and shadow).
A victim *hides* the host on a view when none of its detections overlaps the host's box in
bird's-eye view (the camera detector: none of class ``car`` at IoU 0.5 with the host's 2D
box), counted over the views where the victim found the host without the object. The shape
is also judged as before, its returns re-cast with Open3D into the clean sweep (the camera not
seeing it), which isolates the LiDAR side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torchvision.ops import box_iou

from avrobust.attacks.lidar.adv_object import (
    MOUNTS,
    AdversarialObject,
    HostView,
    host_pose,
    optimise_object,
    recast_object,
)
from avrobust.attacks.lidar.object_texture import ObjectTextureAttack, ObjectView
from avrobust.attacks.lidar.objective import FrameObjective, Victim, overlaps
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.core.attachment import Attachment
from avrobust.core.errors import ConfigError, DataError
from avrobust.core.frame import Frame
from avrobust.core.sensors import LidarSpec
from avrobust.core.thresholds import DETECTION_SCORE, MATCH_IOU
from avrobust.evaluation.lidar_attack import target_box
from avrobust.evaluation.viewpoints import Sweep, render_sweep, view_backend
from avrobust.models.camera_detector import CameraDetector
from avrobust.models.fusion_detectors import detect_2d
from avrobust.scenario.library import load_scenario

NO_OBJECT, GREY, TEXTURED = "no object", "grey object", "textured object"


def host_box_2d(frame: Frame, host_id: int) -> torch.Tensor | None:
    """The host's ``[4]`` 2D box (xyxy) in the frame's ground truth, or None."""
    ids = frame.truth.ids.tolist()
    return frame.truth.boxes_2d.xyxy[ids.index(host_id)].float() if host_id in ids else None


def camera_finds(
    camera: CameraDetector, frame: Frame, box: torch.Tensor, category: str, threshold: float
) -> bool:
    """Whether the camera detector reports ``category`` overlapping ``box`` (``MATCH_IOU``)."""
    with torch.no_grad():
        dets = detect_2d(camera, frame.image, threshold)
    keep = dets["labels"] == camera.classes.index(category)
    boxes = dets["boxes"][keep]
    return bool(len(boxes)) and bool((box_iou(boxes, box[None])[:, 0] >= MATCH_IOU).any())


def victim_finds(victim: Victim, frame: Frame, category: str = "car") -> bool:
    """Whether the LiDAR-using ``victim`` reports anything over the host (the nearest
    ``category`` object ahead) in bird's-eye view."""
    box = target_box(frame, category)
    return overlaps(FrameObjective(victim, frame).detect(frame.points), None, box)


def judge_rendered(
    frames: dict[str, list[Frame]],
    victims: dict[str, Victim],
    camera: CameraDetector,
    host_id: int,
    category: str = "car",
    camera_threshold: float = DETECTION_SCORE,
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, list[bool]]]]:
    """Per checker (``camera``: the camera detector alone, then each victim) and variant:
    ``"k/n"`` views hidden among those where it found the host with no object (``frames``
    holds the same views per variant, :data:`NO_OBJECT` among them); and, per checker and
    variant, whether each view counts as hidden (False where it was not judged)."""
    clean = frames[NO_OBJECT]
    boxes = [host_box_2d(f, host_id) for f in clean]
    checks: dict[str, Callable[[Frame, int], bool]] = {
        "camera": lambda f, i: camera_finds(camera, f, boxes[i], category, camera_threshold)
    }
    for name, victim in victims.items():
        checks[name] = lambda f, i, v=victim: victim_finds(v, f, category)
    out: dict[str, dict[str, str]] = {}
    hidden: dict[str, dict[str, list[bool]]] = {}
    for check, finds in checks.items():
        found = [i for i, f in enumerate(clean) if boxes[i] is not None and finds(f, i)]
        row = {NO_OBJECT: f"{len(found)}/{len(clean)} found"}
        hidden[check] = {}
        for name, fs in frames.items():
            if name != NO_OBJECT:
                flags = [False] * len(clean)
                for i in found:
                    flags[i] = not finds(fs[i], i)
                hidden[check][name] = flags
                row[name] = f"{sum(flags)}/{len(found)}"
        out[check] = row
    return out, hidden


def judge_recast(
    obj: AdversarialObject,
    frames: list[Frame],
    victims: dict[str, Victim],
    spec: LidarSpec,
    category: str = "car",
) -> dict[str, str]:
    """Per victim, ``"k/n"``: hidden among the frames where it found the host, the object's
    returns re-cast with Open3D into the clean sweep (the camera image stays clean)."""
    out = {}
    for name, victim in victims.items():
        hidden = judged = 0
        for f in frames:
            o, sweep = FrameObjective(victim, f), LidarSweep.from_frame(f, spec)
            box = target_box(f, category)
            if not overlaps(o.detect(sweep.points), None, box):
                continue
            placed = obj.placed(host_pose(box, obj.mount))
            attacked = recast_object(sweep, spec, placed, obj.faces, obj.reflectivity)
            hidden += not overlaps(o.detect(attacked.points), None, box)
            judged += 1
        out[name] = f"{hidden}/{judged}"
    return out


@dataclass
class ObjectAttackSetup:
    """What ``avrobust attack lidar-object`` does. The host is the scenario's first target.

    ``steps`` shape steps against ``victim`` (0: keep ``offsets``, loaded from a ``.pt`` file
    when given); ``texture_steps`` camera texture steps (0: the object stays plain grey).
    """

    scenario: str = "lead_vehicle"
    victim: str = "fusion-late"
    mount: str = "rear"
    size: tuple[float, float, float] = (0.3, 1.8, 1.4)
    subdivisions: int = 2
    max_offset: float = 0.8
    bounds: tuple[tuple[float, float], ...] | None = None
    steps: int = 150
    lr: float = 0.05
    offsets: Path | None = None
    texture_steps: int = 120
    texture_size: tuple[int, int] = (56, 72)
    train: Sweep = field(
        default_factory=lambda: Sweep(
            (10.0, 15.0, 20.0), (0.0,), ("ClearNoon", "CloudyNoon"), (0.0,)
        )
    )
    test: Sweep = field(
        default_factory=lambda: Sweep(
            (10.0, 12.5, 15.0, 17.5, 20.0), (0.0,), ("ClearNoon", "CloudyNoon", "Dusk"), (-0.5, 0.5)
        )
    )


@dataclass
class ObjectAttackRun:
    """The object, its texture (None when not optimised), the results, the held-out views as
    rendered per variant, and per checker and variant which of them count as hidden (see
    :func:`judge_rendered`; empty without a camera detector), for pictures."""

    obj: AdversarialObject
    texture: torch.Tensor | None
    results: dict
    rendered: dict[str, list[Frame]]
    hidden: dict[str, dict[str, list[bool]]] = field(default_factory=dict)


def run_object_attack(
    setup: ObjectAttackSetup,
    victims: dict[str, Victim],
    progress: Callable[[str, int, int], None] = lambda *_: None,
) -> ObjectAttackRun:
    """Shape, texture and both judgements; ``victims`` must hold ``setup.victim`` and a
    fusion victim (for the camera detector) or ``setup.texture_steps`` must be 0.
    ``progress(stage, done, total)`` follows each stage's steps."""
    if setup.mount not in MOUNTS:
        raise ConfigError(f"unknown mount {setup.mount!r}", field="mount", allowed="roof, rear")
    if setup.victim not in victims:
        raise ConfigError(f"the victim {setup.victim!r} is not loaded", field="victim")
    sc = load_scenario(setup.scenario)
    if not sc.targets or sc.sensors.camera is None or sc.sensors.lidar is None:
        raise ConfigError("the scenario needs a target, a camera and a LiDAR", field="scenario")
    host = sc.targets[0].object
    cam, spec = sc.sensors.camera.to_spec(), sc.sensors.lidar.to_spec()
    camera = next((v.camera for v in victims.values() if hasattr(v, "camera")), None)
    if setup.texture_steps and camera is None:
        raise ConfigError("the texture needs a fusion victim's camera detector", field="victims")

    shape = MOUNTS[setup.mount](setup.size, setup.subdivisions)
    obj = AdversarialObject(
        *shape, max_offset=setup.max_offset, mount=setup.mount, bounds=setup.bounds
    )
    if setup.offsets is not None:
        try:
            offsets = torch.load(setup.offsets, weights_only=True)
        except Exception as exc:  # a missing or foreign file: say which, not how pickle failed
            raise DataError(f"not an offsets file ({exc})", file=setup.offsets) from None
        if not isinstance(offsets, torch.Tensor) or offsets.shape != obj.base.shape:
            raise ConfigError(
                f"the offsets do not fit this shape ({len(obj.base)} vertices: --size, "
                f"--mount and the subdivisions must be those they were made with)",
                file=setup.offsets,
                field="offsets",
            )
        obj.offsets = offsets.float()
    n_views = len(setup.train.viewpoints()) + len(setup.test.viewpoints())
    done = [0]

    def rendered_one(_: int) -> None:
        done[0] += 1
        progress("rendering views", done[0], n_views)

    train = render_sweep(sc, setup.train, cam, lidar=spec, progress=rendered_one).frames
    test = render_sweep(sc, setup.test, cam, lidar=spec, progress=rendered_one).frames
    results: dict = {"scenario": setup.scenario, "host": host, "optimised_against": setup.victim}
    if setup.steps:
        model = victims[setup.victim]
        views = [
            HostView(FrameObjective(model, f), LidarSweep.from_frame(f, spec), target_box(f, "car"))
            for f in train
        ]
        t0 = time.monotonic()
        history = optimise_object(
            obj, views, spec, setup.steps, setup.lr,
            on_step=lambda k, _: progress(f"shape vs {setup.victim}", k + 1, setup.steps),
        )  # fmt: skip
        results["shape"] = {
            "loss": [history[0], min(history)],
            "seconds": round(time.monotonic() - t0, 1),
        }
    v = obj.vertices()
    results["extent_m"] = [
        [round(float(v[:, k].min()), 3), round(float(v[:, k].max()), 3)] for k in range(3)
    ]
    progress("re-casting the shape", 0, 1)
    results["re-cast, camera clean"] = {
        "train": judge_recast(obj, train, victims, spec),
        "held_out": judge_recast(obj, test, victims, spec),
    }
    grey = obj.attachment(host)
    texture = None
    if setup.texture_steps:
        with_grey = []
        for vp, f in zip(setup.train.viewpoints(), train, strict=True):
            backend = view_backend(sc, vp, cam, None, [grey])
            box = host_box_2d(f, backend.object_id(host))
            if box is None:
                backend.close()
            else:
                with_grey.append(ObjectView(backend, box))
        t0 = time.monotonic()
        attack = ObjectTextureAttack(camera, steps=setup.texture_steps)
        texture, history = attack(
            with_grey, grey.name, setup.texture_size,
            on_step=lambda k, *_: progress("texture vs camera", k + 1, setup.texture_steps),
        )  # fmt: skip
        for view in with_grey:
            view.backend.close()
        results["texture"] = {
            "loss": [history[0], min(history)],
            "seconds": round(time.monotonic() - t0, 1),
        }
    variants: dict[str, list[Attachment]] = {NO_OBJECT: [], GREY: [grey]}
    if texture is not None:
        variants[TEXTURED] = [obj.attachment(host, texture)]
    total, done[0] = len(variants) * len(setup.test.viewpoints()), 0

    def rerendered_one(_: int) -> None:
        done[0] += 1
        progress("re-rendering with the object", done[0], total)

    rendered = {
        name: render_sweep(
            sc, setup.test, cam, lidar=spec, attachments=atts, progress=rerendered_one
        ).frames
        for name, atts in variants.items()
    }
    hidden: dict[str, dict[str, list[bool]]] = {}
    if camera is not None:
        with view_backend(sc, setup.test.viewpoints()[0], cam, None) as backend:
            host_id = backend.object_id(host)
        summary, hidden = judge_rendered(rendered, victims, camera, host_id)
        results["re-rendered, held_out"] = summary
    return ObjectAttackRun(obj, texture, results, rendered, hidden)


def save_run(run: ObjectAttackRun, out: Path) -> dict[str, Path]:
    """Write the mesh (``object.obj`` with its texture, else plain), its offsets, the
    results JSON and, with a texture, ``object.patch``: the texture at the true size of the
    base shape's rear face as a follower sees it (``avrobust export patch`` prints it, tiled
    over pages), into the folder ``out``; returns the paths by kind."""
    import json

    from avrobust.attacks.printability import load_palette
    from avrobust.core.patch import Patch

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "mesh": run.obj.save(out / "object.obj", run.texture),
        "offsets": out / "object.offsets.pt",
        "results": out / "object.results.json",
    }
    torch.save(run.obj.offsets, paths["offsets"])
    if run.texture is not None:
        lo, hi = run.obj.base.min(0).values, run.obj.base.max(0).values
        patch = Patch(
            run.texture,
            torch.ones(1, *run.texture.shape[1:]),
            (float(hi[1] - lo[1]), float(hi[2] - lo[2])),
            name="adversarial_object",
            palette=load_palette("printer30"),
            provenance={"attack": "lidar-object", **run.results},
        )
        paths["print"] = patch.save(out / "object.patch")
    paths["results"].write_text(json.dumps(run.results, indent=1) + "\n")
    return paths
