"""Built-in scenes, in Python until scenario files (YAML) describe them."""

from __future__ import annotations

import math

from avrobust.sim.roads import RoadLayout
from avrobust.sim.scene import (
    EgoRoute,
    PatchPlacement,
    PedestrianPlacement,
    SceneDescription,
    SignPlacement,
    VehiclePlacement,
)

PRESETS: dict[str, SceneDescription] = {
    "urban_stop": SceneDescription(
        name="urban_stop",
        road=RoadLayout("straight", 220, environment="urban", crosswalks=(62.0,)),
        ego=EgoRoute(0.0, -1, 8.0),
        signs=(
            SignPlacement("stop", 60.0, surface="stop_sign"),
            SignPlacement("speed_limit_30", 20.0, side="left"),
        ),
        vehicles=(
            VehiclePlacement("oncoming", "sedan", 110.0, lane=1, speed=7.0, colour=2),
            VehiclePlacement("parked_1", "suv", 38.0, parked=True, colour=5),
        ),
        pedestrians=(PedestrianPlacement("walker", 64.0, -6.0, heading=0.0, speed=0.0),),
        patches=(PatchPlacement("poster", "billboard", 48.0, -7.3, (1.2, 1.6), 0.6),),
        seed=11,
    ),
    "rural_speed_limit": SceneDescription(
        name="rural_speed_limit",
        road=RoadLayout(
            "curve",
            260,
            sidewalk_width=0.0,
            kerb_height=0.0,
            curve_radius=-220.0,
            environment="rural",
        ),
        ego=EgoRoute(0.0, -1, 15.0),
        signs=(
            SignPlacement("speed_limit_80", 90.0, offset=1.5, height=1.6, surface="speed_sign"),
        ),
        vehicles=(VehiclePlacement("oncoming", "van", 200.0, lane=1, speed=15.0, colour=4),),
        seed=12,
    ),
    "intersection": SceneDescription(
        name="intersection",
        road=RoadLayout("intersection", 200, environment="urban", crosswalks=(88.0, 112.0)),
        ego=EgoRoute(20.0, -1, 6.0),
        signs=(
            SignPlacement("stop", 84.0, surface="stop_sign"),
            SignPlacement("yield", 118.0, side="left"),
            SignPlacement("pedestrian_crossing", 86.0, side="left"),
        ),
        vehicles=(VehiclePlacement("crossing_car", "sedan", 100.0, lane=1, speed=0.0, colour=0),),
        pedestrians=(
            PedestrianPlacement("ped_1", 88.0, -6.5, heading=math.pi / 2, speed=1.3),
            PedestrianPlacement("ped_2", 112.0, 6.0, heading=-math.pi / 2, speed=1.1),
        ),
        seed=13,
    ),
    "lead_vehicle": SceneDescription(
        name="lead_vehicle",
        road=RoadLayout("straight", 300, lanes_per_direction=2, environment="urban"),
        ego=EgoRoute(0.0, -1, 12.0),
        vehicles=(
            VehiclePlacement(
                "lead",
                "suv",
                20.0,
                lane=-1,
                speed=12.0,
                colour=1,
                rear_surface="lead_rear",
                rear_size=(1.4, 0.6),
            ),
            VehiclePlacement("left_lane", "sedan", 45.0, lane=-2, speed=14.0, colour=3),
        ),
        seed=14,
    ),
    "parked_vehicle": SceneDescription(
        name="parked_vehicle",
        road=RoadLayout("straight", 200, environment="urban"),
        ego=EgoRoute(0.0, -1, 9.0),
        vehicles=(
            VehiclePlacement(
                "parked_target", "sedan", 35.0, parked=True, colour=6, rear_surface="parked_rear"
            ),
            VehiclePlacement("parked_2", "van", 60.0, parked=True, colour=4),
        ),
        signs=(SignPlacement("no_entry", 90.0, side="left"),),
        seed=15,
    ),
    "pedestrian_crossing": SceneDescription(
        name="pedestrian_crossing",
        road=RoadLayout("straight", 200, environment="urban", crosswalks=(45.0,)),
        ego=EgoRoute(0.0, -1, 7.0),
        signs=(SignPlacement("pedestrian_crossing", 42.0, surface="crossing_sign"),),
        pedestrians=(
            PedestrianPlacement("crossing_1", 45.0, -6.2, heading=math.pi / 2, speed=1.2),
            PedestrianPlacement("waiting", 46.5, 6.0, heading=-math.pi / 2, speed=0.0),
        ),
        patches=(PatchPlacement("road_patch", "road", 30.0, -1.75, (1.5, 1.5)),),
        seed=16,
    ),
    "highway": SceneDescription(
        name="highway",
        road=RoadLayout(
            "straight",
            400,
            lanes_per_direction=3,
            lane_width=3.75,
            sidewalk_width=0.0,
            kerb_height=0.0,
            environment="highway",
            centre_line="solid",
        ),
        ego=EgoRoute(0.0, -2, 25.0),
        signs=(SignPlacement("speed_limit_80", 150.0, offset=2.0, height=2.2),),
        vehicles=(
            VehiclePlacement("truck_like", "van", 40.0, lane=-3, speed=22.0, colour=4),
            VehiclePlacement("fast", "sedan", 70.0, lane=-1, speed=30.0, colour=0),
            VehiclePlacement("ahead", "suv", 55.0, lane=-2, speed=24.0, colour=7),
            VehiclePlacement("oncoming", "sedan", 300.0, lane=2, speed=27.0, colour=2),
        ),
        seed=17,
    ),
}
