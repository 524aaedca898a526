"""Road coordinates to world poses on a CARLA map, and the OpenDRIVE road generated for
scenarios that name no CARLA town.

A scenario's road starts at ``map.origin`` (default: the world origin, heading +x). On a loaded
map the road follows the lane found there: positions are taken along the lane to the right of
the centre line (OpenDRIVE lane -1) with ``Waypoint.next``, and ``lateral`` is measured from the
centre line, left positive, as in the embedded simulator. Works with a ``carla.Map`` built
offline from OpenDRIVE text, which is how the tests check it.
"""

from __future__ import annotations

import math

import numpy as np

from avrobust.backends.carla.convert import _carla
from avrobust.core.errors import ConfigError
from avrobust.scenario.schema import MapSpec


class RoadFrame:
    """Road positions of one scenario on one CARLA map."""

    def __init__(self, carla_map, spec: MapSpec) -> None:
        carla = _carla()
        self.map = carla_map
        self.lane_width = spec.lane_width
        o = spec.origin
        ox, oy, oyaw = (0.0, 0.0, 0.0) if o is None else (o.x, o.y, math.radians(o.yaw))
        # The centre of lane -1 next to the origin: half a lane to the right of the centre line.
        lx = ox + 0.5 * spec.lane_width * math.sin(oyaw) + 0.1 * math.cos(oyaw)
        ly = oy - 0.5 * spec.lane_width * math.cos(oyaw) + 0.1 * math.sin(oyaw)
        start = carla_map.get_waypoint(
            carla.Location(x=lx, y=-ly, z=0.0),
            project_to_road=True,
            lane_type=carla.LaneType.Driving,
        )
        if start is None:
            raise ConfigError(
                f"no driving lane near the scenario's origin ({ox:.1f}, {oy:.1f}) on this map",
                field="map.origin",
            )
        self.start = start
        self.start_s = 0.1  # the start waypoint was taken 0.1 m along the road

    def waypoint(self, s: float):
        """The lane -1 waypoint ``s`` metres along the road from its start."""
        d = s - self.start_s
        if abs(d) < 1e-3:
            return self.start
        steps = self.start.next(d) if d > 0 else self.start.previous(-d)
        if not steps:
            raise ConfigError(
                f"the map's road ends before s = {s:.1f} m from the scenario's origin",
                field="map",
            )
        return steps[0]

    def pose(self, s: float, lateral: float, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
        """Our ``[4, 4]`` world pose at road position ``(s, lateral)``, heading ``yaw`` radians
        from the road's direction, ``z`` metres above the road."""
        wp = self.waypoint(s)
        t = wp.transform
        heading = -math.radians(t.rotation.yaw)  # ours: counter-clockwise from +x
        # The waypoint is the centre of lane -1 (CARLA may report a wider lane in towns).
        width = getattr(wp, "lane_width", self.lane_width) or self.lane_width
        x_c, y_c = t.location.x, -t.location.y  # ours
        left = (-math.sin(heading), math.cos(heading))
        off = lateral + width / 2
        x, y = x_c + off * left[0], y_c + off * left[1]
        c, sn = math.cos(heading + yaw), math.sin(heading + yaw)
        m = np.eye(4)
        m[:2, :2] = [[c, -sn], [sn, c]]
        m[:3, 3] = (x, y, t.location.z + z)
        return m


def opendrive_for(spec: MapSpec, name: str = "avrobust") -> str:
    """OpenDRIVE text for a scenario's straight or curved road (one road, its lanes, no
    junction), for ``client.generate_opendrive_world`` when the scenario names no town."""
    if spec.kind == "intersection":
        raise ConfigError(
            "only straight and curved roads are generated as OpenDRIVE; give map.carla_town or "
            "map.opendrive for an intersection",
            field="map.kind",
        )
    o = spec.origin
    ox, oy, hdg = (0.0, 0.0, 0.0) if o is None else (o.x, o.y, math.radians(o.yaw))
    # OpenDRIVE is right-handed with y left, as ours (CARLA mirrors y when it loads it).
    if spec.kind == "curve":
        geometry = f'<arc curvature="{1.0 / spec.curve_radius:.9g}"/>'
    else:
        geometry = "<line/>"
    lanes = []
    for side, ids in (("left", range(spec.lanes_per_direction, 0, -1)),
                      ("right", range(-1, -spec.lanes_per_direction - 1, -1))):  # fmt: skip
        body = "".join(
            f'<lane id="{i}" type="driving" level="false"><link/>'
            f'<width sOffset="0" a="{spec.lane_width:.6g}" b="0" c="0" d="0"/>'
            f'<roadMark sOffset="0" type="{_mark(i, spec)}" weight="standard" color="standard" '
            'width="0.15"/></lane>'
            for i in ids
        )
        lanes.append(f"<{side}>{body}</{side}>")
    return (
        '<?xml version="1.0" standalone="yes"?>\n'
        "<OpenDRIVE>"
        f'<header revMajor="1" revMinor="4" name="{name}" version="1.00"/>'
        f'<road name="{name}" length="{spec.length:.6g}" id="1" junction="-1"><link/>'
        f'<planView><geometry s="0" x="{ox:.6g}" y="{oy:.6g}" hdg="{hdg:.9g}" '
        f'length="{spec.length:.6g}">{geometry}</geometry></planView>'
        "<elevationProfile/><lateralProfile/>"
        '<lanes><laneSection s="0">'
        f"{lanes[0]}"
        '<center><lane id="0" type="none" level="false"><link/>'
        f'<roadMark sOffset="0" type="{_centre_mark(spec)}" weight="standard" color="standard" '
        'width="0.15"/></lane></center>'
        f"{lanes[1]}"
        "</laneSection></lanes></road></OpenDRIVE>\n"
    )


def _centre_mark(spec: MapSpec) -> str:
    return {"dashed": "broken", "solid": "solid", "none": "none"}[spec.centre_line]


def _mark(lane: int, spec: MapSpec) -> str:
    return "solid" if abs(lane) == spec.lanes_per_direction else "broken"
