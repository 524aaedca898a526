"""Every name a campaign can use for a model, an attack or a defence, registered here in one
place (``avrobust campaign components`` lists them): ``none`` for each kind (``model: none``
measures what the sensors capture of each target), the shipped victims, the patch and LiDAR
attacks, the consistency checks and input transformations. Each factory imports its class
lazily, so listing the names loads no model; the classes follow the protocols of
:mod:`avrobust.core.components`, which :func:`~avrobust.campaign.registry.create` checks."""

from __future__ import annotations

from typing import Any

from avrobust.campaign.registry import register
from avrobust.core.components import AttackBase, DefenceBase, ModelBase
from avrobust.core.thresholds import DETECTION_SCORE


class NoModel(ModelBase):
    """No perception: frames are evaluated for sensor coverage of the targets only."""

    name = "none"

    def __call__(self, frame: Any) -> None:
        return None


class NoAttack(AttackBase):
    name = "none"


class NoDefence(DefenceBase):
    name = "none"


@register("model", "none", "no perception model: record sensor coverage of each target")
def _no_model() -> NoModel:
    return NoModel()


class OracleModel(ModelBase):
    """Ground truth as the car's perception (closed-loop campaigns): the drive measures the
    planner's own limits, so a failure with a model and not with the oracle is perception's."""

    name = "oracle"

    def __call__(self, frame: Any) -> None:
        return None


@register(
    "model",
    "oracle",
    "ground truth as perception, for closed-loop campaigns (the planner's own limits)",
)
def _oracle() -> OracleModel:
    return OracleModel()


@register("attack", "none", "clean: no attack")
def _no_attack() -> NoAttack:
    return NoAttack()


@register("defence", "none", "no defence")
def _no_defence() -> NoDefence:
    return NoDefence()


@register(
    "model",
    "sign-classifier",
    "the shipped sign classifier on every visible sign's ground-truth box "
    "(params: weights, min_box_px)",
)
def _sign_classifier(weights: str | None = None, min_box_px: float = 8.0):
    from avrobust.models.victims import SignClassifierOnTruth

    return SignClassifierOnTruth(weights, min_box_px)


@register(
    "model",
    "camera-detector",
    "the shipped camera detector (cars, pedestrians, traffic signs) on each frame "
    "(params: weights, score_threshold)",
)
def _camera_detector(weights: str | None = None, score_threshold: float = DETECTION_SCORE):
    from avrobust.models.victims import CameraDetectorVictim

    return CameraDetectorVictim(weights, score_threshold)


@register(
    "model",
    "sign-pipeline",
    "sign recognition as deployed: the camera detector finds signs, the sign classifier names "
    "them (params: detector, classifier, score_threshold)",
)
def _sign_pipeline(
    detector: str | None = None,
    classifier: str | None = None,
    score_threshold: float = DETECTION_SCORE,
):
    from avrobust.models.victims import SignRecognitionPipeline

    return SignRecognitionPipeline(detector, classifier, score_threshold)


@register(
    "model",
    "lidar-detector",
    "the shipped LiDAR detector (cars, pedestrians; 3D boxes) on each sweep "
    "(params: weights, score_threshold)",
)
def _lidar_detector(weights: str | None = None, score_threshold: float = DETECTION_SCORE):
    from avrobust.models.victims import LidarDetectorVictim

    return LidarDetectorVictim(weights, score_threshold)


@register(
    "model",
    "fusion-late",
    "late camera-LiDAR fusion (CLOCs-style): the camera detector re-scores the LiDAR "
    "detector's 3D boxes (params: weights, score_threshold, camera, lidar)",
)
def _fusion_late(
    weights: str | None = None,
    score_threshold: float = DETECTION_SCORE,
    camera: str | None = None,
    lidar: str | None = None,
):
    from avrobust.models.victims import FusionDetectorVictim

    return FusionDetectorVictim("late", weights, score_threshold, camera, lidar)


@register(
    "model",
    "fusion-painting",
    "early camera-LiDAR fusion (PointPainting): points painted with the camera detector's "
    "class scores feed a LiDAR detector (params: weights, score_threshold, camera)",
)
def _fusion_painting(
    weights: str | None = None, score_threshold: float = DETECTION_SCORE, camera: str | None = None
):
    from avrobust.models.victims import FusionDetectorVictim

    return FusionDetectorVictim("painting", weights, score_threshold, camera)


class PatchAttack(AttackBase):
    """Paint a saved patch (texture and mask) on a named attack surface of every frame's scene:
    the physical attack as the backend renders it."""

    name = "patch"

    def __init__(self, file: str, surface: str, control: str | None = None) -> None:
        from avrobust.attacks.controls import control as make_control
        from avrobust.core.patch import Patch
        from avrobust.core.resources import resolve_user_path

        self.file = resolve_user_path(file)
        self.patch = Patch.load(self.file)
        self.surface = surface
        self.control = control
        if control is not None:  # the same mask and placement, not optimised
            self.patch = make_control(control)(self.patch)

    def prepare(self, backend: Any, scenario: Any) -> None:
        backend.apply_texture(self.surface, self.patch.texture, self.patch.mask)

    def provenance(self) -> dict:
        """What the report's threat model and appendix need: the printed size and hashes, and
        how the patch was made (its own provenance: attack, victim weights, steps, EOT)."""
        from avrobust.models.weights import file_sha256

        return {
            "file": str(self.file),
            "file_sha256": file_sha256(self.file),
            "patch_sha256": self.patch.sha256(),
            "patch_name": self.patch.name,
            "size_m": list(self.patch.size_m),
            "coverage": self.patch.coverage,
            "surface": self.surface,
            "control": self.control,
            "made_by": self.patch.provenance,
        }


@register(
    "attack",
    "patch",
    "apply a saved patch file to a surface (params: file, surface; control: grey, mean or "
    "noise paints the same mask in mid-grey, the texture's mean colour or random palette "
    "colours instead)",
    controls={c: {"control": c} for c in ("grey", "mean", "noise")},
)
def _patch_attack(file: str, surface: str, control: str | None = None) -> PatchAttack:
    return PatchAttack(file, surface, control)


@register(
    "attack",
    "lidar-remove",
    "white-box removal of the first target's LiDAR returns in every frame, against the "
    "campaign's LiDAR or fusion model (params: points (budget, default 250), method "
    "(white-box or random), margin_deg, start_frame: the first attacked frame, fill_road: "
    "also inject the road returns the removed rays would see, against the void check)",
    controls={"random": {"method": "random"}},
)
def _lidar_remove(
    points: int = 250,
    method: str = "white-box",
    margin_deg: float = 3.0,
    start_frame: int = 0,
    fill_road: bool = False,
):
    from avrobust.attacks.lidar.in_campaign import LidarRemovalAttack

    return LidarRemovalAttack(points, method, margin_deg, start_frame, fill_road)


@register(
    "attack",
    "adversarial-object",
    "a mesh file fixed to the first target for the whole episode, seen by camera and LiDAR "
    "(embedded backend; params: mesh (a textured OBJ from `avrobust attack lidar-object`, or "
    "any mesh, drawn grey), mount (rear or roof), texture (false: draw it plain grey), host "
    "(default: the first target), reflectivity)",
    controls={"grey": {"texture": False}},
)
def _adversarial_object(
    mesh: str,
    mount: str = "rear",
    texture: bool = True,
    host: str | None = None,
    reflectivity: float = 0.4,
):
    from avrobust.attacks.lidar.object_in_campaign import AdversarialObjectAttack

    return AdversarialObjectAttack(mesh, mount, texture, host, reflectivity)


@register(
    "attack",
    "lidar-spoof",
    "white-box spoofing of a phantom ahead of the ego in every frame, against the campaign's "
    "LiDAR or fusion model; recorded as the target `phantom`, right when not reported "
    "(params: distance (its rear face, m, default 7.5), lateral (m), category (car or "
    "pedestrian), points (budget, default 60), method (white-box, black-box or random), "
    "steps, start_frame)",
    controls={"random": {"method": "random"}},
)
def _lidar_spoof(
    distance: float = 7.5,
    lateral: float = 0.0,
    category: str = "car",
    points: int = 60,
    method: str = "white-box",
    steps: int = 30,
    start_frame: int = 0,
):
    from avrobust.attacks.lidar.in_campaign import LidarSpoofAttack

    return LidarSpoofAttack(distance, lateral, category, points, method, steps, start_frame)


@register(
    "defence",
    "free-space-check",
    "CARLO-style physical check: drops 3D detections whose box lets most laser rays aimed into "
    "it pass through (params: threshold (free-space ratio, default 0.4), min_rays)",
)
def _free_space_check(threshold: float = 0.4, min_rays: int = 8):
    from avrobust.defences.free_space import FreeSpaceCheck

    return FreeSpaceCheck(threshold, min_rays)


@register(
    "defence",
    "jpeg",
    "input transformation: the camera image re-compressed as JPEG before the model "
    "(params: quality, default 75); a non-adaptive baseline",
)
def _jpeg(quality: int = 75):
    from avrobust.defences.preprocess import jpeg_defence

    return jpeg_defence(quality)


@register(
    "defence",
    "median-blur",
    "input transformation: a median filter on the camera image before the model "
    "(params: kernel, default 3); a non-adaptive baseline",
)
def _median(kernel: int = 3):
    from avrobust.defences.preprocess import median_defence

    return median_defence(kernel)


@register(
    "defence",
    "temporal-check",
    "temporal consistency over the job's frames: objects confirmed after `confirm` frames, "
    "coasted `coast` frames when they vanish, classes voted over the track; alarms for "
    "vanished, appeared, class_flip, implausible_motion (params: confirm, coast, vote, "
    "min_track, appear_px, appear_m, range_m, max_speed)",
)
def _temporal_check(**params):
    from avrobust.defences.temporal import TemporalCheck

    return TemporalCheck(**params)


@register(
    "defence",
    "cross-modal-check",
    "camera detections need LiDAR returns on one surface at a plausible size, LiDAR "
    "detections need an overlapping camera detection of the same category (params: "
    "min_support, min_returns, min_rays, min_iou, camera_range_m, camera, lidar)",
)
def _cross_modal_check(**params):
    from avrobust.defences.cross_modal import CrossModalCheck

    return CrossModalCheck(**params)


@register(
    "defence",
    "local-gradient-smoothing",
    "input transformation: Local Gradient Smoothing (Naseer et al. 2019) flattens dense "
    "clusters of high image gradient, where a patch is (params: threshold 0.1, strength 2.3)",
)
def _lgs(threshold: float = 0.1, strength: float = 2.3):
    from avrobust.defences.preprocess import lgs_defence

    return lgs_defence(threshold, strength)


@register(
    "defence",
    "sign-monitor",
    "runtime monitor on a sign stack's classifier: a doubted_sign alarm for each sign crop "
    "it doubts beyond the threshold (calibrate it with avrobust defend monitors); in closed "
    "loop its fail_safe takes doubted signs as stop and may start a minimal-risk manoeuvre "
    "(params: threshold, method odin|msp|energy|mahalanobis|mahalanobis_multi|knn|"
    "odin_mahalanobis, fit (crops, for the fitted ones) or file (a monitor file from "
    "avrobust defend monitors --save: method and threshold from it), unreadable false "
    "(also doubt signs read as background), "
    "min_px 12 (smaller signs are not judged), fail_safe {doubted_sign stop, persist 0, "
    "window 10, mrm_speed 0, mrm_decel 3})",
)
def _sign_monitor(**params):
    from avrobust.defences.monitors.defence import SignMonitor

    return SignMonitor(**params)


@register(
    "defence",
    "camera-fallback",
    "modality fallback for a LiDAR or fusion detector: a car or pedestrian the camera "
    "detects and no 3D box covers is ranged on the ground from the camera and added, with a "
    "camera_only alarm (params: min_iou 0.1, camera (weights), score_threshold, max_range_m 60)",
)
def _camera_fallback(**params):
    from avrobust.driving.modality_fallback import CameraFallback

    return CameraFallback(**params)


@register(
    "defence",
    "void-check",
    "shadow-style check for removed LiDAR returns: raises a 'void' alarm for every solid "
    "cluster of at least min_rays road-aimed rays with no return; the output is unchanged "
    "(params: min_rays 16, ground_range 45, lidar)",
)
def _void_check(**params):
    from avrobust.defences.shadow import VoidCheck

    return VoidCheck(**params)
