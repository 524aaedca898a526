"""The shared vocabulary of avrobust: frames, calibration, boxes, detections, surfaces, patches.

``core`` imports nothing else of avrobust; everything else imports it.
"""

from avrobust.core.boxes import Box2D, Box3D
from avrobust.core.calibration import Calibration, CameraIntrinsics
from avrobust.core.conventions import invert_pose, make_pose, rotation_matrix, transform_points
from avrobust.core.detections import Detections
from avrobust.core.device import resolve_device
from avrobust.core.errors import (
    AvrobustError,
    BackendError,
    ConfigError,
    DataError,
    DependencyError,
    ModelError,
)
from avrobust.core.frame import Frame, GroundTruth
from avrobust.core.patch import Patch
from avrobust.core.seeding import make_generator, seed_from_id
from avrobust.core.surface import SurfaceView

__all__ = [
    "AvrobustError",
    "BackendError",
    "Box2D",
    "Box3D",
    "Calibration",
    "CameraIntrinsics",
    "ConfigError",
    "DataError",
    "DependencyError",
    "Detections",
    "Frame",
    "GroundTruth",
    "ModelError",
    "Patch",
    "SurfaceView",
    "invert_pose",
    "make_generator",
    "make_pose",
    "resolve_device",
    "rotation_matrix",
    "seed_from_id",
    "transform_points",
]
