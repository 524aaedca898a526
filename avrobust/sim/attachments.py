"""Textured meshes fixed to an object of the world: an adversarial object on its host car.

An :class:`Attachment` rides with its host (the host's trajectory, the mount's offset) and is
drawn by both sensors like any other part of the world: the camera samples its texture
through the attachment's own material, which is an attack surface of the same name (so
``Simulator.render(textures={name: tensor})`` is differentiable in that texture), and the
LiDAR casts against its triangles with the material's reflectivity. It is a ``prop``: no
ground-truth box of its own, and the host's box stays the host's.
"""

from __future__ import annotations

import numpy as np

from avrobust.core.attachment import HITCH_HEIGHT, MOUNTS, Attachment
from avrobust.core.errors import ConfigError
from avrobust.sim.meshes import Mesh
from avrobust.sim.world import Material, Part, SimObject, World


def mount_pose(host: SimObject, mount: str) -> np.ndarray:
    """``[4, 4]`` host-from-mount pose: the middle of the host's rear face at hitch height, or
    the middle of its roof, from the host's box (the same places as
    :func:`avrobust.attacks.lidar.adv_object.host_pose` finds from a 3D box)."""
    if mount not in MOUNTS:
        raise ConfigError(f"unknown mount {mount!r}", field="mount", allowed=", ".join(MOUNTS))
    centre, size = host.local_box()
    pose = np.eye(4)
    if mount == "rear":
        pose[:3, 3] = [centre[0] - size[0] / 2, centre[1], centre[2] - size[2] / 2 + HITCH_HEIGHT]
    else:
        pose[:3, 3] = [centre[0], centre[1], centre[2] + size[2] / 2]
    return pose


def attach(world: World, attachment: Attachment) -> SimObject:
    """Add ``attachment`` to ``world`` (before any renderer is built on it)."""
    if attachment.host not in world.objects:
        raise ConfigError(
            f"attachment {attachment.name!r}: no object named {attachment.host!r} to carry it",
            field="host",
            allowed=", ".join(world.objects),
        )
    host = world.objects[attachment.host]
    world.add_material(
        Material(
            attachment.name,
            attachment.texture.detach().clone(),
            reflectivity=attachment.reflectivity,
            surface=attachment.name,
        )
    )
    mesh = Mesh(attachment.vertices, attachment.faces, attachment.uvs)
    offset = mount_pose(host, attachment.mount)

    def trajectory(t: float, host=host, offset=offset) -> np.ndarray:
        return host.pose_at(t) @ offset

    return world.add_object(
        SimObject(
            attachment.name,
            "prop",
            [Part(mesh, attachment.name)],
            pose=host.pose_at(0.0) @ offset,
            trajectory=trajectory if host.trajectory is not None else None,
        )
    )
