"""OpenSCENARIO 1.0 import for the common subset, read leniently as CARLA's scenario_runner reads
it: entities, the Init section's teleports (world, lane and road positions), initial speeds and
the environment's weather. Every element that is not supported is listed in one warning (and in
``ImportResult.unsupported``), never silently dropped.

Coordinates: a FileHeader description starting with ``CARLA:`` means CARLA's left-handed frame
(converted with :func:`avrobust.core.conventions.from_carla`); otherwise the file is in
OpenSCENARIO's right-handed frame, which is ours. Lane and road positions resolve through
``carla.Map`` built offline from the OpenDRIVE file that ``RoadNetwork/LogicFile`` names (or
one the caller gives); without one they fail with a clear message.

For the embedded backend the scene is re-expressed around the ego: a straight road starts 10 m
behind it along its initial heading (``map.origin``); the world coordinates stay in the scenario
for the CARLA backend.
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from avrobust.core.conventions import from_carla
from avrobust.core.errors import ConfigError, DependencyError
from avrobust.scenario.schema import (
    EgoSpec,
    MapSpec,
    PedestrianSpec,
    PoseSpec,
    Scenario,
    VehicleSpec,
    WeatherSpec,
)

# Scenario_runner's files are kilobytes and CARLA's town maps a few megabytes; far larger
# files are refused before they are parsed.
MAX_XOSC_BYTES = 8 << 20
MAX_XODR_BYTES = 64 << 20

EGO_NAMES = {"hero", "ego", "ego_vehicle", "egovehicle"}
VAN_CATEGORIES = {"van", "truck", "bus", "trailer", "semitrailer", "tram", "train"}

# Element paths (from the root, '/'-joined) that the reader understands. Children of the
# descriptive entity elements (bounding boxes, performance, axles, properties) are read or are
# irrelevant to rendering, so whole subtrees are accepted there.
SUPPORTED = {
    "OpenSCENARIO",
    "OpenSCENARIO/FileHeader",
    "OpenSCENARIO/ParameterDeclarations",
    "OpenSCENARIO/ParameterDeclarations/ParameterDeclaration",
    "OpenSCENARIO/CatalogLocations",
    "OpenSCENARIO/RoadNetwork",
    "OpenSCENARIO/RoadNetwork/LogicFile",
    "OpenSCENARIO/Entities",
    "OpenSCENARIO/Entities/ScenarioObject",
    "OpenSCENARIO/Storyboard",
    "OpenSCENARIO/Storyboard/Init",
    "OpenSCENARIO/Storyboard/Init/Actions",
    "OpenSCENARIO/Storyboard/Init/Actions/GlobalAction",
    "OpenSCENARIO/Storyboard/Init/Actions/GlobalAction/EnvironmentAction",
    "OpenSCENARIO/Storyboard/Init/Actions/GlobalAction/EnvironmentAction/Environment",
}
ENV = "OpenSCENARIO/Storyboard/Init/Actions/GlobalAction/EnvironmentAction/Environment"
SUPPORTED |= {
    f"{ENV}/TimeOfDay",
    f"{ENV}/Weather",
    f"{ENV}/Weather/Sun",
    f"{ENV}/Weather/Fog",
    f"{ENV}/Weather/Precipitation",
}
PRIV = "OpenSCENARIO/Storyboard/Init/Actions/Private"
SUPPORTED |= {
    PRIV,
    f"{PRIV}/PrivateAction",
    f"{PRIV}/PrivateAction/TeleportAction",
    f"{PRIV}/PrivateAction/TeleportAction/Position",
    f"{PRIV}/PrivateAction/TeleportAction/Position/WorldPosition",
    f"{PRIV}/PrivateAction/TeleportAction/Position/LanePosition",
    f"{PRIV}/PrivateAction/TeleportAction/Position/RoadPosition",
    f"{PRIV}/PrivateAction/LongitudinalAction",
    f"{PRIV}/PrivateAction/LongitudinalAction/SpeedAction",
    f"{PRIV}/PrivateAction/LongitudinalAction/SpeedAction/SpeedActionDynamics",
    f"{PRIV}/PrivateAction/LongitudinalAction/SpeedAction/SpeedActionTarget",
    f"{PRIV}/PrivateAction/LongitudinalAction/SpeedAction/SpeedActionTarget/AbsoluteTargetSpeed",
}
# Entity kinds are reported per entity (with the entity's name) rather than by path.
SUBTREES = (
    "OpenSCENARIO/Entities/ScenarioObject/Vehicle",
    "OpenSCENARIO/Entities/ScenarioObject/Pedestrian",
    "OpenSCENARIO/Entities/ScenarioObject/MiscObject",
    "OpenSCENARIO/Entities/ScenarioObject/CatalogReference",
)


@dataclass
class ImportResult:
    scenario: Scenario
    unsupported: list[str] = field(default_factory=list)


@dataclass
class _Entity:
    name: str
    kind: str  # vehicle | pedestrian | misc
    category: str
    model: str
    is_ego: bool
    pose: tuple[float, float, float] | None = None  # ours: x, y, yaw (radians)
    speed: float = 0.0


def _strip(tag: str) -> str:
    return tag.split("}", 1)[-1]


def _params(root: ET.Element) -> dict[str, str]:
    out = {}
    for p in root.iter():
        if _strip(p.tag) == "ParameterDeclaration" and p.get("name"):
            out[p.get("name").lstrip("$")] = p.get("value", "")
    return out


def _attr(el: ET.Element, name: str, params: dict[str, str], default: str | None = None):
    v = el.get(name, default)
    if isinstance(v, str) and v.startswith("$"):
        if v[1:] not in params:
            raise ConfigError(f"parameter {v} is not declared", field=f"{_strip(el.tag)}@{name}")
        v = params[v[1:]]
    return v


def _num(el: ET.Element, name: str, params: dict[str, str], default: float = 0.0) -> float:
    v = _attr(el, name, params, None)
    if v is None or v == "":
        return default
    try:
        return float(v)
    except ValueError:
        raise ConfigError(f"not a number: {v!r}", field=f"{_strip(el.tag)}@{name}") from None


def _find(el: ET.Element, *path: str) -> ET.Element | None:
    cur = el
    for name in path:
        cur = next((c for c in cur if _strip(c.tag) == name), None)
        if cur is None:
            return None
    return cur


def _unsupported(root: ET.Element) -> list[str]:
    counts: Counter[str] = Counter()

    def walk(el: ET.Element, path: str) -> None:
        for child in el:
            p = f"{path}/{_strip(child.tag)}"
            if any(p.startswith(s) for s in SUBTREES):
                continue
            if p not in SUPPORTED:
                counts[p] += 1
                continue
            walk(child, p)

    walk(root, _strip(root.tag))
    return [f"{p} (x{n})" if n > 1 else p for p, n in sorted(counts.items())]


class _Positions:
    """World positions, and lane/road positions through an offline ``carla.Map``."""

    def __init__(self, carla_frame: bool, opendrive: Path | None, source: Path) -> None:
        self.carla_frame = carla_frame
        self.opendrive = opendrive
        self.source = source
        self._map = None

    def _carla_map(self):
        if self._map is None:
            if self.opendrive is None:
                raise ConfigError(
                    "lane and road positions need the road network: the file names "
                    "a CARLA town, not an OpenDRIVE file; pass one (--opendrive)",
                    file=self.source,
                    field="RoadNetwork/LogicFile",
                )
            if not self.opendrive.is_file():
                raise ConfigError("no such OpenDRIVE file", file=self.opendrive)
            try:
                import carla
            except ImportError:
                raise DependencyError(
                    "lane and road positions need the carla client: pip install 'avrobust[carla]'"
                ) from None
            if self.opendrive.stat().st_size > MAX_XODR_BYTES:
                raise ConfigError(
                    f"the road network is {self.opendrive.stat().st_size} bytes; at most "
                    f"{MAX_XODR_BYTES}",
                    file=self.opendrive,
                )
            self._map = carla.Map(self.opendrive.stem, self.opendrive.read_text())
        return self._map

    def world(self, x: float, y: float, h: float) -> tuple[float, float, float]:
        if self.carla_frame:
            (x, y, _), (_, _, yaw) = from_carla(x, y, 0.0, 0.0, 0.0, math.degrees(h))
            return x, y, yaw
        return x, y, h

    def lane(self, road: int, lane: int, s: float, offset: float) -> tuple[float, float, float]:
        wp = self._carla_map().get_waypoint_xodr(road, lane, s)
        if wp is None:
            raise ConfigError(
                f"no lane {lane} on road {road} at s={s}", file=self.source, field="LanePosition"
            )
        t = wp.transform
        right = t.get_right_vector()
        # OpenSCENARIO's lane offset is positive to the left, CARLA's right vector points right.
        x, y = t.location.x - right.x * offset, t.location.y - right.y * offset
        (x, y, _), (_, _, yaw) = from_carla(x, y, 0.0, 0.0, 0.0, t.rotation.yaw)
        return x, y, yaw

    def road(self, road: int, s: float, t_off: float) -> tuple[float, float, float]:
        m = self._carla_map()
        for lane in (-1, 1):
            wp = m.get_waypoint_xodr(road, lane, s)
            if wp is not None:
                break
        else:
            raise ConfigError(f"no road {road} at s={s}", file=self.source, field="RoadPosition")
        tr = wp.transform
        right = tr.get_right_vector()
        half = wp.lane_width / 2 * (1 if wp.lane_id < 0 else -1)
        # Back to the reference line, then t metres to its left.
        rx = tr.location.x - right.x * half - right.x * t_off
        ry = tr.location.y - right.y * half - right.y * t_off
        yaw = tr.rotation.yaw + (180.0 if wp.lane_id > 0 else 0.0)
        (x, y, _), (_, _, yaw_r) = from_carla(rx, ry, 0.0, 0.0, 0.0, yaw)
        return x, y, yaw_r


def _weather(env: ET.Element | None, params: dict[str, str]) -> WeatherSpec:
    if env is None:
        return WeatherSpec()
    fields: dict[str, float] = {}
    weather = _find(env, "Weather")
    if weather is not None:
        cloud = weather.get("cloudState")
        if cloud is not None:  # OpenSCENARIO 1.0 enumeration
            fields["cloudiness"] = {
                "free": 0,
                "cloudy": 50,
                "overcast": 80,
                "rainy": 90,
                "skyOff": 100,
            }.get(cloud, 0)
        sun = _find(weather, "Sun")
        if sun is not None:
            fields["sun_azimuth_angle"] = math.degrees(_num(sun, "azimuth", params))
            fields["sun_altitude_angle"] = max(
                -90.0, min(90.0, math.degrees(_num(sun, "elevation", params)))
            )
            intensity = _num(sun, "intensity", params, 1.0)
            fields["cloudiness"] = max(0.0, min(100.0, 100.0 - 100.0 * intensity))
        fog = _find(weather, "Fog")
        if fog is not None:
            vis = _num(fog, "visualRange", params, 100000.0)
            fields["fog_distance"] = max(0.0, vis)
            fields["fog_density"] = 100.0 if vis < 1000 else 0.0
        rain = _find(weather, "Precipitation")
        if rain is not None:
            kind = rain.get("precipitationType", "rain")
            level = 0.0 if kind == "dry" else _num(rain, "intensity", params)
            fields["precipitation"] = max(0.0, min(100.0, 100 * level))
            fields["wetness"] = fields["precipitation"]
    return WeatherSpec(preset="ClearNoon", **fields)


def import_openscenario(path: str | Path, opendrive: str | Path | None = None) -> ImportResult:
    """Read an OpenSCENARIO file into a :class:`Scenario` (see the module's notes)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such file", file=path)
    if path.stat().st_size > MAX_XOSC_BYTES:  # before the parser holds it all in memory
        raise ConfigError(
            f"the file is {path.stat().st_size} bytes; an OpenSCENARIO file may hold at most "
            f"{MAX_XOSC_BYTES}",
            file=path,
        )
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ConfigError(
            f"not well-formed XML: {exc}", file=path, line=exc.position[0] if exc.position else None
        ) from None
    if _strip(root.tag) != "OpenSCENARIO":
        raise ConfigError(f"root element is {_strip(root.tag)}, not OpenSCENARIO", file=path)
    params = _params(root)
    header = _find(root, "FileHeader")
    description = "" if header is None else header.get("description", "")
    carla_frame = description.startswith("CARLA:")
    logic = _find(root, "RoadNetwork", "LogicFile")
    town = None
    xodr = None if opendrive is None else Path(opendrive)
    if logic is not None:
        ref = _attr(logic, "filepath", params, "") or ""
        if ref.endswith(".xodr"):
            cand = Path(ref) if Path(ref).is_absolute() else path.parent / ref
            xodr = xodr or cand
        elif ref:
            town = ref
    positions = _Positions(carla_frame, xodr, path)
    problems: list[str] = []

    entities: dict[str, _Entity] = {}
    for obj in root.iter():
        if _strip(obj.tag) != "ScenarioObject":
            continue
        name = obj.get("name", "")
        child = next(iter(obj), None)
        kind = "misc" if child is None else _strip(child.tag)
        if kind == "Vehicle":
            props = {
                p.get("name"): p.get("value") for p in child.iter() if _strip(p.tag) == "Property"
            }
            ego = name.lower() in EGO_NAMES or props.get("type") == "ego_vehicle"
            entities[name] = _Entity(
                name, "vehicle", child.get("vehicleCategory", "car"), child.get("name", ""), ego
            )
        elif kind == "Pedestrian":
            entities[name] = _Entity(name, "pedestrian", "pedestrian", child.get("name", ""), False)
        else:
            problems.append(f"entity {name}: {kind} is not supported, left out")

    init = _find(root, "Storyboard", "Init", "Actions")
    for priv in [] if init is None else [c for c in init if _strip(c.tag) == "Private"]:
        ref = priv.get("entityRef", "")
        ent = entities.get(ref)
        if ent is None:
            continue
        for pa in priv:
            tele = _find(pa, "TeleportAction", "Position")
            if tele is not None:
                pos = next(iter(tele), None)
                tag = None if pos is None else _strip(pos.tag)
                if tag == "WorldPosition":
                    ent.pose = positions.world(
                        _num(pos, "x", params), _num(pos, "y", params), _num(pos, "h", params)
                    )
                elif tag == "LanePosition":
                    ent.pose = positions.lane(
                        int(_num(pos, "roadId", params)),
                        int(_num(pos, "laneId", params)),
                        _num(pos, "s", params),
                        _num(pos, "offset", params),
                    )
                elif tag == "RoadPosition":
                    ent.pose = positions.road(
                        int(_num(pos, "roadId", params)),
                        _num(pos, "s", params),
                        _num(pos, "t", params),
                    )
                else:
                    problems.append(f"entity {ref}: position {tag} is not supported")
            target = _find(
                pa, "LongitudinalAction", "SpeedAction", "SpeedActionTarget", "AbsoluteTargetSpeed"
            )
            if target is not None:
                ent.speed = max(0.0, _num(target, "value", params))

    egos = [e for e in entities.values() if e.is_ego and e.kind == "vehicle"]
    if not egos:
        raise ConfigError(
            "no ego vehicle: name one 'hero' or 'ego_vehicle', or give it "
            '<Property name="type" value="ego_vehicle"/>',
            file=path,
            field="Entities",
        )
    ego = egos[0]
    if ego.pose is None:
        raise ConfigError(
            f"the ego {ego.name} has no TeleportAction in Init", file=path, field="Storyboard/Init"
        )
    ex, ey, eyaw = ego.pose
    lane_width = 3.5
    # The embedded road starts 10 m behind the ego; the ego drives in its lane -1.
    origin = PoseSpec(
        x=ex - 10 * math.cos(eyaw) - (lane_width / 2) * math.sin(eyaw),
        y=ey - 10 * math.sin(eyaw) + (lane_width / 2) * math.cos(eyaw),
        yaw=math.degrees(eyaw),
    )
    vehicles, pedestrians = [], []
    for e in entities.values():
        if e is ego:
            continue
        if e.pose is None:
            problems.append(f"entity {e.name}: no TeleportAction in Init, left out")
            continue
        pose = PoseSpec(x=e.pose[0], y=e.pose[1], yaw=math.degrees(e.pose[2]))
        if e.kind == "vehicle":
            if e.category in ("bicycle", "motorbike"):
                problems.append(
                    f"entity {e.name}: vehicleCategory {e.category} is drawn as a sedan"
                )
            body = (
                "van"
                if e.category in VAN_CATEGORIES
                else (
                    "suv"
                    if any(k in e.model.lower() for k in ("suv", "jeep", "patrol", "x5"))
                    else "sedan"
                )
            )
            vehicles.append(VehicleSpec(name=e.name, body=body, pose=pose, speed=e.speed))
        elif e.kind == "pedestrian":
            pedestrians.append(PedestrianSpec(name=e.name, pose=pose, speed=e.speed))
    env = None if init is None else _find(init, "GlobalAction", "EnvironmentAction", "Environment")
    unsupported = _unsupported(root) + problems
    try:
        scenario = Scenario(
            name=path.stem.replace(" ", "_"),
            description=f"Imported from {path.name}. {description}".strip(),
            map=MapSpec(
                kind="straight",
                length=300.0,
                carla_town=town,
                opendrive=None if xodr is None else str(xodr),
                origin=origin,
            ),
            ego=EgoSpec(pose=PoseSpec(x=ex, y=ey, yaw=math.degrees(eyaw)), speed=ego.speed),
            vehicles=vehicles,
            pedestrians=pedestrians,
            weather=_weather(env, params),
        )
    except ValueError as exc:
        raise ConfigError(f"the imported scenario is not valid: {exc}", file=path) from None
    if unsupported:
        warnings.warn(f"{path}: not imported: " + "; ".join(unsupported), UserWarning, stacklevel=2)
    return ImportResult(scenario, unsupported)


def write_yaml(result: ImportResult, out: str | Path) -> Path:
    """Write an imported scenario as a scenario file, with what was not imported as comments."""
    import yaml

    from avrobust.core.files import atomic_write

    data = result.scenario.model_dump(mode="json", exclude_defaults=True)
    data = {"name": result.scenario.name, **data}
    head = "".join(f"# not imported: {u}\n" for u in result.unsupported)
    with atomic_write(out, "w") as fh:
        fh.write(head + yaml.safe_dump(data, sort_keys=False))
    return Path(out)
