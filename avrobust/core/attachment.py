"""A textured mesh fixed to an object of a scene (an adversarial object on its host car), as
plain data: the embedded simulator draws it (:mod:`avrobust.sim.attachments`), attacks make it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MOUNTS = ("roof", "rear")
HITCH_HEIGHT = 0.3  # metres above the road where a rear carrier's base sits


@dataclass
class Attachment:
    """Attributes:
    name: the attachment's object and material name (pass its texture by this name).
    host: the name of the object it is fixed to.
    vertices: ``[V, 3]`` metres in the mount frame (x along the host, z up; for ``rear`` the
        origin is the middle of the host's rear at hitch height, for ``roof`` the middle of
        the roof).
    faces: ``[F, 3]`` vertex indices.
    uvs: ``[F, 3, 2]`` texture coordinates of each face corner.
    texture: ``[3, h, w]`` albedo in [0, 1].
    mount: ``rear`` or ``roof``.
    reflectivity: LiDAR reflectivity of its surface.
    """

    name: str
    host: str
    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    texture: torch.Tensor
    mount: str = "rear"
    reflectivity: float = 0.4
