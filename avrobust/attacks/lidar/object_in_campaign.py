"""The adversarial object as a campaign attack: a mesh file (a textured OBJ as
``avrobust attack lidar-object`` writes it, or any mesh Open3D reads, drawn plain grey) fixed
to the scenario's first target for the whole episode, so both sensors see it in every frame of
every drive-by, and per-frame and per-encounter results come from the same runner, store and
report as every other attack. The embedded backend draws it; CARLA cannot attach a mesh at run
time, so such jobs fail with a message saying so.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avrobust.attacks.lidar.adv_object import PLAIN_GREY
from avrobust.core.attachment import MOUNTS, Attachment
from avrobust.core.components import AttackBase
from avrobust.core.errors import ConfigError, DataError
from avrobust.core.resources import resolve_user_path

NAME = "adversarial_object"  # the attachment's name in the scene (and its texture's)


def load_attachment(
    path: str | Path,
    host: str,
    mount: str = "rear",
    textured: bool = True,
    reflectivity: float = 0.4,
) -> Attachment:
    """A mesh file (metres, the mount's frame, as :meth:`AdversarialObject.save` writes it) as
    an :class:`Attachment` on ``host``; its texture when it has one and ``textured``, else
    plain grey."""
    import open3d as o3d

    path = resolve_user_path(path)
    if not path.is_file():
        raise DataError("no such mesh file", file=path, field="mesh")
    if mount not in MOUNTS:
        raise ConfigError(f"unknown mount {mount!r}", field="mount", allowed=", ".join(MOUNTS))
    mesh = o3d.io.read_triangle_mesh(str(path), True)
    faces = np.asarray(mesh.triangles, dtype=np.int64)
    if len(faces) == 0:
        raise DataError("the mesh has no triangles", file=path, field="mesh")
    uv = np.asarray(mesh.triangle_uvs, dtype=np.float32).reshape(-1, 3, 2)
    texture = torch.full((3, 8, 8), PLAIN_GREY)
    if textured and mesh.has_textures() and len(uv) == len(faces):
        uv = uv.copy()
        uv[..., 1] = 1.0 - uv[..., 1]  # OBJ's v counts up from the image's bottom
        image = np.asarray(mesh.textures[0])[..., :3]
        texture = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    else:
        uv = np.zeros((len(faces), 3, 2), np.float32)
    return Attachment(
        NAME,
        host,
        np.asarray(mesh.vertices, dtype=np.float32),
        faces,
        uv,
        texture,
        mount=mount,
        reflectivity=reflectivity,
    )


class AdversarialObjectAttack(AttackBase):
    name = "adversarial-object"

    def __init__(
        self,
        mesh: str,
        mount: str = "rear",
        texture: bool = True,
        host: str | None = None,
        reflectivity: float = 0.4,
    ) -> None:
        self.mesh, self.mount, self.texture = resolve_user_path(mesh), mount, texture
        self.host, self.reflectivity = host, reflectivity
        # Read once, at set-up (a bad file fails here): each job fixes it to its host.
        self._object = load_attachment(self.mesh, host or "", mount, texture, reflectivity)

    def attachments(self, scenario: Any) -> list[Attachment]:
        """What the backend must build into the scene before the episode starts."""
        host = self.host or (scenario.targets[0].object if scenario.targets else None)
        if host is None:
            raise ConfigError("adversarial-object needs a host: a target or params.host")
        return [replace(self._object, host=host)]

    def prepare(self, backend: Any, scenario: Any) -> None:
        """Nothing to do once the scene is built: the object rides with its host."""

    def provenance(self) -> dict:
        """The mesh (path, hash, extent), how it is mounted, and how it was made when its
        results file (``<mesh stem>.results.json``, as ``attack lidar-object`` writes it)
        lies beside it."""
        import json

        from avrobust.models.weights import file_sha256

        v = self._object.vertices
        made = self.mesh.with_name(self.mesh.stem + ".results.json")
        return {
            "mesh": str(self.mesh),
            "mesh_sha256": file_sha256(self.mesh),
            "extent_m": [[float(v[:, k].min()), float(v[:, k].max())] for k in range(3)],
            "mount": self.mount,
            "textured": self.texture,
            "host": self.host,
            "reflectivity": self.reflectivity,
            "made_by": json.loads(made.read_text()) if made.is_file() else None,
        }
