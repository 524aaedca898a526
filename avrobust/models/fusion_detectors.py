"""The two camera-LiDAR fusion detectors as whole models (image, sweep and calibration in;
3D boxes, scores and labels out), and their weights files.

* :class:`LateFusionDetector`: the camera detector and the LiDAR detector run apart; a fusion
  head re-scores the LiDAR boxes with the camera's support (:mod:`.late_fusion`).
* :class:`PaintingDetector`: the camera detector's class scores paint the points, then a LiDAR
  detector trained on painted points runs (:mod:`.painting`).

Both are differentiable from the image and the points to the scores (``forward``), which the
attacks need; ``detect`` is the inference path. A fusion weights file holds only what the
fusion trained (the head; the painted LiDAR detector) and names the camera (and LiDAR) weights
it was trained with by SHA-256: loading it with other base weights is refused, since a fusion
fitted to one detector's scores means nothing on another's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avrobust.core.boxes import Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.errors import ModelError
from avrobust.models import camera_detector as cam
from avrobust.models import lidar_detector as lid
from avrobust.models.late_fusion import FusionHead, pair_features
from avrobust.models.painting import paint, score_map
from avrobust.models.weights import ASSETS, file_sha256, load_weights

Output = tuple[Box3D, torch.Tensor, torch.Tensor]


def detect_2d(camera: cam.CameraDetector, image: torch.Tensor, threshold: float) -> dict:
    """The camera detector's detections on one ``[3, H, W]`` image, differentiable in it."""
    h, w = image.shape[-2:]
    return cam.decode(camera(image[None]), (h, w), threshold)[0]


class LateFusionDetector(nn.Module):
    def __init__(
        self,
        camera: cam.CameraDetector,
        lidar: lid.LidarDetector,
        head: FusionHead,
        camera_threshold: float = 0.05,
        lidar_threshold: float = 0.05,
    ) -> None:
        super().__init__()
        self.camera, self.lidar, self.head = camera.eval(), lidar.eval(), head.eval()
        self.classes = lidar.classes
        self.camera_threshold = camera_threshold
        self.lidar_threshold = lidar_threshold

    def forward(
        self, image: torch.Tensor, points: torch.Tensor, calibration: Calibration
    ) -> Output:
        dets = detect_2d(self.camera, image, self.camera_threshold)
        ((boxes, scores, labels),) = lid.decode(
            self.lidar([points]), self.lidar.grid, self.lidar_threshold
        )
        feats, owner, visible = pair_features(
            boxes, scores, labels, self.classes, dets, self.camera.classes, calibration
        )
        return boxes, self.head.fuse(scores, feats, owner, visible), labels

    @torch.no_grad()
    def detect(self, image: torch.Tensor, points: torch.Tensor, calibration: Calibration) -> Output:
        return self(image, points, calibration)


class PaintingDetector(nn.Module):
    def __init__(
        self,
        camera: cam.CameraDetector,
        lidar: lid.LidarDetector,
        paint_classes: tuple[str, ...],
        camera_threshold: float = 0.05,
        lidar_threshold: float = 0.05,
    ) -> None:
        super().__init__()
        if lidar.extra_features != len(paint_classes) + 1:
            raise ModelError(
                f"the LiDAR detector takes {lidar.extra_features} painted channels, "
                f"painting {len(paint_classes)} classes gives {len(paint_classes) + 1}"
            )
        self.camera, self.lidar = camera.eval(), lidar.eval()
        self.classes = lidar.classes
        self.paint_classes = tuple(paint_classes)
        self.camera_threshold = camera_threshold
        self.lidar_threshold = lidar_threshold

    def painted(
        self, image: torch.Tensor, points: torch.Tensor, calibration: Calibration
    ) -> torch.Tensor:
        """The sweep with each point's painted scores and camera-visibility flag."""
        dets = detect_2d(self.camera, image, self.camera_threshold)
        scores = score_map(
            dets["boxes"],
            dets["scores"],
            dets["labels"],
            self.camera.classes,
            self.paint_classes,
            tuple(image.shape[-2:]),
        )
        return paint(points, calibration, scores)

    def forward(
        self, image: torch.Tensor, points: torch.Tensor, calibration: Calibration
    ) -> Output:
        pts = self.painted(image, points, calibration)
        ((boxes, scores, labels),) = lid.decode(
            self.lidar([pts]), self.lidar.grid, self.lidar_threshold
        )
        return boxes, scores, labels

    @torch.no_grad()
    def detect(self, image: torch.Tensor, points: torch.Tensor, calibration: Calibration) -> Output:
        return self(image, points, calibration)


def base_weights(meta: dict, role: str, given: str | Path | None, fusion_file: str | Path) -> Path:
    """The base weights a fusion file was trained with: ``given`` or the shipped file it
    names, refused when its SHA-256 differs from the one recorded at training."""
    path = Path(given) if given else ASSETS / meta[f"{role}_file"]
    if not path.is_file():
        raise ModelError(
            f"the {role} weights it was trained with are missing: {path}", file=fusion_file
        )
    if file_sha256(path) != meta[f"{role}_sha256"]:
        raise ModelError(
            f"was trained with other {role} weights than {path} (SHA-256 differs): "
            f"retrain it on these (avrobust train) or pass the {role} weights it names",
            file=fusion_file,
            field=f"{role}_sha256",
        )
    return path


def load_late_fusion(
    path: str | Path | None = None,
    camera: str | Path | None = None,
    lidar: str | Path | None = None,
) -> LateFusionDetector:
    """The late-fusion detector of a ``fusion-late`` weights file (the shipped one by default)."""
    path = Path(path) if path else ASSETS / "fusion_late.pt"
    state, meta = load_weights(path, "fusion-late")
    head = FusionHead()
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"weights do not fit the fusion head ({exc})".splitlines()[0], file=path
        ) from None
    camera_model = cam.load_camera_detector(base_weights(meta, "camera", camera, path))
    lidar_model = lid.load_lidar_model(base_weights(meta, "lidar", lidar, path))
    return LateFusionDetector(camera_model, lidar_model, head).eval()


def load_painting(
    path: str | Path | None = None, camera: str | Path | None = None
) -> PaintingDetector:
    """The PointPainting detector of a ``fusion-painting`` weights file (shipped by default)."""
    path = Path(path) if path else ASSETS / "fusion_painting.pt"
    _, meta = load_weights(path, "fusion-painting")
    lidar_model = lid.load_lidar_model(path, "fusion-painting")
    camera_model = cam.load_camera_detector(base_weights(meta, "camera", camera, path))
    return PaintingDetector(camera_model, lidar_model, tuple(meta["paint_classes"])).eval()
