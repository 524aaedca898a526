"""Victims a campaign can name (registered in ``avrobust.campaign.components``)."""

from __future__ import annotations

from pathlib import Path

import torch

from avrobust.core.classes import DETECTION_CLASSES
from avrobust.core.components import ModelBase
from avrobust.core.detections import Detections
from avrobust.core.frame import Frame
from avrobust.core.resources import resolve_user_path
from avrobust.core.thresholds import DETECTION_SCORE
from avrobust.models.adapters import ClassifierAdapter, load_classifier
from avrobust.models.detector_adapter import load_detector
from avrobust.models.weights import ASSETS


def weights_provenance(**files: str | Path | None) -> dict[str, dict[str, str]]:
    """``{role: {"file", "sha256"}}`` for the weights files a victim loaded (the report's
    model hashes). Shipped files are named by file name, others by the path given."""
    from avrobust.models.weights import weights_identity

    out = {}
    for role, f in files.items():
        if f is not None:
            name, sha = weights_identity(f)
            out[role] = {"file": name, "sha256": sha}
    return out


def crop_boxes(
    image: torch.Tensor, boxes: torch.Tensor, size: int = 64, margin: float = 0.15
) -> torch.Tensor:
    """``[N, 3, size, size]`` square crops around ``boxes`` (xyxy) with ``margin`` context, the
    same crops the classifier was trained on; differentiable in ``image``."""
    from avrobust.data.crops import square_crop

    if boxes.shape[0] == 0:
        return image.new_zeros(0, 3, size, size)
    return torch.stack([square_crop(image, b, margin, size) for b in boxes])


class SignClassifierOnTruth(ModelBase):
    """The sign classifier applied to every visible traffic sign's ground-truth box: the
    classification victim of RP2-style evaluations (detection assumed perfect). The
    detector-plus-classifier pipeline replaces the ground-truth boxes with detections."""

    name = "sign-classifier"
    categories = ("traffic_sign",)  # targets of other categories get no verdict

    def __init__(self, weights: str | Path | None = None, min_box_px: float = 8.0) -> None:
        path = resolve_user_path(weights) if weights else ASSETS / "sign_classifier.pt"
        self.classifier: ClassifierAdapter = load_classifier(path)
        self.min_box_px = min_box_px
        self.weights = {"classifier": path}

    def provenance(self) -> dict:
        return {"weights": weights_provenance(**self.weights), "kind": "classifier on truth"}

    def __call__(self, frame: Frame) -> Detections:
        t = frame.truth
        keep = [
            i
            for i, c in enumerate(t.categories)
            if c == "traffic_sign" and float(t.boxes_2d.height[i]) >= self.min_box_px
        ]
        boxes = t.boxes_2d.xyxy[keep]
        if not keep:
            return Detections.empty("2d", self.classifier.classes)
        crops = crop_boxes(frame.image, boxes)
        with torch.no_grad():
            probs = self.classifier(crops).softmax(1)
        scores, labels = probs.max(1)
        return Detections(boxes, scores, labels, "2d", self.classifier.classes)


class CameraDetectorVictim(ModelBase):
    """The camera object detector on each frame's image: right about a target when a detection
    of the target's category overlaps its box (IoU >= 0.5)."""

    name = "camera-detector"
    categories = DETECTION_CLASSES
    label_level = "category"

    def __init__(
        self, weights: str | Path | None = None, score_threshold: float = DETECTION_SCORE
    ) -> None:
        path = resolve_user_path(weights) if weights else ASSETS / "camera_detector.pt"
        self.detector = load_detector(path, score_threshold=score_threshold)
        self.weights = {"detector": path}

    def provenance(self) -> dict:
        return {"weights": weights_provenance(**self.weights), "kind": "2d"}

    def __call__(self, frame: Frame) -> Detections:
        return self.detector(frame)


class SignRecognitionPipeline(ModelBase):
    """Traffic-sign recognition as AV stacks do it: the camera detector finds signs, the
    classifier names each detected sign's crop (``background`` when it sees no sign there)."""

    name = "sign-pipeline"
    categories = ("traffic_sign",)

    def __init__(
        self,
        detector: str | Path | None = None,
        classifier: str | Path | None = None,
        score_threshold: float = DETECTION_SCORE,
    ) -> None:
        self.detector = load_detector(
            Path(detector) if detector else ASSETS / "camera_detector.pt",
            score_threshold=score_threshold,
        )
        self.classifier: ClassifierAdapter = load_classifier(
            Path(classifier) if classifier else ASSETS / "sign_classifier.pt"
        )
        self.weights = {
            "detector": Path(detector) if detector else ASSETS / "camera_detector.pt",
            "classifier": Path(classifier) if classifier else ASSETS / "sign_classifier.pt",
        }
        if "traffic_sign" not in self.detector.classes:
            from avrobust.core.errors import ModelError

            raise ModelError(
                "the sign pipeline needs a detector with a 'traffic_sign' class",
                field="detector",
                allowed=", ".join(self.detector.classes),
            )

    def provenance(self) -> dict:
        return {"weights": weights_provenance(**self.weights), "kind": "2d"}

    def __call__(self, frame: Frame) -> Detections:
        signs = self.detector(frame).of_class("traffic_sign")
        if len(signs) == 0:
            return Detections.empty("2d", self.classifier.classes)
        with torch.no_grad():
            probs = self.classifier(crop_boxes(frame.image, signs.boxes)).softmax(1)
        conf, labels = probs.max(1)
        # A stack reports a sign when both stages agree it is one: detection times class score.
        return Detections(signs.boxes, signs.scores * conf, labels, "2d", self.classifier.classes)


class LidarDetectorVictim(ModelBase):
    """The LiDAR detector on each frame's sweep: right about a target when a 3D detection of
    its category overlaps its box (BEV IoU at least 0.5)."""

    name = "lidar-detector"
    categories = ("car", "pedestrian")
    label_level = "category"

    def __init__(
        self, weights: str | Path | None = None, score_threshold: float = DETECTION_SCORE
    ) -> None:
        from avrobust.models.lidar_adapter import load_lidar_detector

        path = resolve_user_path(weights) if weights else ASSETS / "lidar_detector.pt"
        self.detector = load_lidar_detector(path, score_threshold=score_threshold)
        self.weights = {"detector": path}

    def provenance(self) -> dict:
        return {"weights": weights_provenance(**self.weights), "kind": "3d"}

    def __call__(self, frame: Frame) -> Detections:
        return self.detector(frame)


class FusionDetectorVictim(ModelBase):
    """A camera-LiDAR fusion detector on each frame's image and sweep: right about a target
    when a 3D detection of its category overlaps its box (BEV IoU at least 0.5).

    ``kind``: ``late`` (CLOCs-style re-scoring of the LiDAR boxes by the camera) or
    ``painting`` (PointPainting)."""

    categories = ("car", "pedestrian")
    label_level = "category"

    def __init__(
        self,
        kind: str,
        weights: str | Path | None = None,
        score_threshold: float = DETECTION_SCORE,
        camera: str | Path | None = None,
        lidar: str | Path | None = None,
    ) -> None:
        from avrobust.models.fusion_detectors import load_late_fusion, load_painting

        self.name = f"fusion-{kind}"
        if kind == "late":
            self.model = load_late_fusion(weights, camera, lidar)
        elif kind == "painting":
            self.model = load_painting(weights, camera)
        else:
            from avrobust.core.errors import ModelError

            raise ModelError(f"unknown fusion {kind!r}", field="kind", allowed="late, painting")
        self.classes = self.model.classes
        self.score_threshold = score_threshold
        default = ASSETS / ("fusion_late.pt" if kind == "late" else "fusion_painting.pt")
        self.weights = {"fusion": resolve_user_path(weights) if weights else default}

    def provenance(self) -> dict:
        """The fusion weights name their camera and LiDAR bases by hash (checked on load)."""
        from avrobust.models.weights import load_weights

        _, meta = load_weights(self.weights["fusion"], self.name)
        bases = {k: v for k, v in meta.items() if k.endswith(("_file", "_sha256"))}
        return {"weights": weights_provenance(**self.weights), "bases": bases, "kind": "3d"}

    def __call__(self, frame: Frame) -> Detections:
        from avrobust.core.errors import ModelError

        if frame.image is None or frame.points is None:
            raise ModelError(f"{self.name} needs both a camera image and a LiDAR sweep")
        boxes, scores, labels = self.model.detect(frame.image, frame.points, frame.calibration)
        keep = scores >= self.score_threshold
        return Detections(
            boxes.as_tensor()[keep].float(), scores[keep], labels[keep], "3d", self.classes
        )
