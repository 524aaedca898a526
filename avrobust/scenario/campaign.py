"""Campaign files: scenarios crossed with condition sweeps, models, attacks and defences,
expanded into Jobs with stable ids.

A Job is plain data (the scenario with its conditions applied, the component references, the
seed) so it crosses process and machine boundaries as JSON. Its id is the SHA-256 of its
canonical JSON, so the same campaign gives the same ids on every machine and every run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from avrobust.core.errors import ConfigError
from avrobust.core.seeding import seed_from_id
from avrobust.core.weather import PRESETS as WEATHER_PRESETS
from avrobust.scenario.library import load_scenario
from avrobust.scenario.loader import load_model
from avrobust.scenario.schema import EpisodeFields, Scenario, SensorsSpec, Strict, WeatherSpec

TIME_OF_DAY = {"dawn": 8.0, "morning": 25.0, "noon": 60.0, "dusk": 2.0, "night": -30.0}


class ComponentRef(Strict):
    """A model, attack or defence by registry name, with its parameters."""

    name: str = Field(description="registry name (avrobust campaign components lists them)")
    params: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")


class AttackRef(ComponentRef):
    """An attack by registry name, or its matched control."""

    control: str | None = Field(
        None,
        description="run the attack's matched control instead: grey, mean or noise for a "
        "patch; random for LiDAR spoofing and removal; grey for the adversarial object",
    )


class Sweep(Strict):
    """Conditions crossed with every scenario; an empty list leaves the scenario's own value.

    Attributes:
        weather: CARLA preset names, or presets with changed fields.
        distance: metres from the ego to the scenario's first target at t = 0 (the ego's start
            moves along its lane).
        angle: degrees the first target (a sign) turns away from facing traffic.
        time_of_day: dawn, morning, noon, dusk or night (sets the sun's altitude).
        sensor_noise: factors on the camera's and LiDAR's noise.
    """

    weather: list[str | WeatherSpec] = Field(default_factory=list)
    distance: list[float] = Field(default_factory=list)
    angle: list[float] = Field(default_factory=list)
    time_of_day: list[Literal["dawn", "morning", "noon", "dusk", "night"]] = Field(
        default_factory=list
    )
    sensor_noise: list[float] = Field(default_factory=list)

    @field_validator("weather")
    @classmethod
    def _presets(cls, v: list) -> list:
        for w in v:
            if isinstance(w, str) and w not in WEATHER_PRESETS:
                raise ValueError(f"unknown preset {w!r}; known: {', '.join(WEATHER_PRESETS)}")
        return v

    @field_validator("distance", "sensor_noise")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(x < 0 for x in v):
            raise ValueError("values must be >= 0")
        return v

    @field_validator("angle")
    @classmethod
    def _angle(cls, v: list[float]) -> list[float]:
        if any(abs(x) > 90 for x in v):
            raise ValueError("angles must be within +-90 degrees")
        return v


class CarlaSettings(Strict):
    servers: list[str] = Field(
        default_factory=lambda: ["localhost:2000"], description="HOST:PORT, ports 3 apart"
    )
    timeout: float = Field(10.0, gt=0, description="seconds to wait for a server answer")


class Criterion(Strict):
    """An acceptance criterion: the largest acceptable rate of a metric, judged per stack.

    The report judges each perception stack (model with defence) against it, for example
    attack success at most 5% within 30 m in clear weather::

        {metric: attack_success, max: 0.05, within_m: 30, weather: [ClearNoon]}

    Metrics: ``attack_success`` (frames, among those the stack got right without the attack,
    that the attack makes it get wrong), ``encounter_failure`` (drive-bys in which the attacked
    stack never recognises the target), ``clean_miss`` (frames the stack gets wrong without any
    attack). Empty filters take everything."""

    name: str | None = Field(None, description="how the report names it (default: generated)")
    metric: Literal["attack_success", "encounter_failure", "clean_miss"] = "attack_success"
    max: float = Field(ge=0, le=1, description="the largest acceptable rate, 0 to 1")
    within_m: float | None = Field(None, gt=0, description="only targets this close, metres")
    weather: list[str] = Field(default_factory=list, description="weather presets")
    light: list[Literal["day", "low sun", "night"]] = Field(default_factory=list)
    scenarios: list[str] = Field(default_factory=list)
    attacks: list[str] = Field(default_factory=list, description="attack registry names")
    min_samples: int = Field(1, ge=1, description="fewer frames or drive-bys: not judged")

    @field_validator("weather")
    @classmethod
    def _presets(cls, v: list[str]) -> list[str]:
        for w in v:
            if w not in WEATHER_PRESETS:
                raise ValueError(f"unknown preset {w!r}; known: {', '.join(WEATHER_PRESETS)}")
        return v

    def title(self) -> str:
        if self.name:
            return self.name
        what = {
            "attack_success": "attack success",
            "encounter_failure": "failed drive-bys under attack",
            "clean_miss": "clean misses",
        }[self.metric]
        parts = [f"{what} at most {self.max:.0%}"]
        if self.within_m is not None:
            parts.append(f"within {self.within_m:g} m")
        for label, values in (
            ("in", self.weather),
            ("light:", self.light),
            ("scenarios:", self.scenarios),
            ("attacks:", self.attacks),
        ):
            if values:
                parts.append(f"{label} {', '.join(values)}")
        return " ".join(parts)


DEFAULT_CRITERIA = (
    Criterion(metric="attack_success", max=0.05),
    Criterion(metric="encounter_failure", max=0.0),
)


class Campaign(Strict):
    """One campaign file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="letters, digits, _ . -")
    description: str = Field("", description="what the campaign asks, for people")
    scenarios: list[str] = Field(
        min_length=1, description="library names, or paths relative to the campaign file"
    )
    sweep: Sweep = Sweep()
    # An empty list would make a campaign of no jobs that "succeeds": at least one each.
    models: list[ComponentRef] = Field(
        default_factory=lambda: [ComponentRef(name="none")], min_length=1
    )
    attacks: list[AttackRef] = Field(default_factory=lambda: [AttackRef(name="none")], min_length=1)
    controls: list[str] = Field(
        default_factory=list,
        description="matched controls to run beside every attack that has them (grey, mean, "
        "noise, random): the same mask, budget or shape, not optimised",
    )
    target_width: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="the widest 95% interval wanted on a drive-by rate; campaign plan says how "
        "many drive-bys per cell that needs",
    )
    defences: list[ComponentRef] = Field(
        default_factory=lambda: [ComponentRef(name="none")], min_length=1
    )
    episode: EpisodeFields | None = Field(None, description="replaces every scenario's episode")
    sensors: SensorsSpec | None = Field(None, description="replaces every scenario's sensors")
    backend: Literal["embedded", "carla"] = Field("embedded", description="where jobs run")
    closed_loop: bool = Field(
        False,
        description="drive every job closed-loop: the reference policy acts on the model's "
        "outputs and the criteria score what the car does (docs/driving.md)",
    )
    carla: CarlaSettings = CarlaSettings()
    timeout: float | None = Field(None, gt=0, description="seconds per job")
    seed: int = Field(0, description="changes every job's id and seed")
    acceptance: list[Criterion] = Field(
        default_factory=list,
        description="what the report judges each stack against (default: attack success at "
        "most 5% and no failed drive-by under attack)",
    )


@dataclass(frozen=True)
class Job:
    """One unit of work: a scenario under conditions, with a model, an attack and a defence."""

    id: str
    campaign: str
    scenario_name: str
    scenario: dict[str, Any]
    conditions: dict[str, Any]
    model: dict[str, Any]
    attack: dict[str, Any]
    defence: dict[str, Any]
    backend: str
    seed: int
    timeout: float | None = None
    carla: dict[str, Any] | None = None  # where CARLA jobs run; not part of the job's identity
    closed_loop: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))

    def load_scenario(self) -> Scenario:
        return Scenario.model_validate(self.scenario)

    @property
    def label(self) -> str:
        cond = ", ".join(f"{k}={v}" for k, v in self.conditions.items())
        return (
            f"{self.scenario_name} [{cond}] model={self.model['name']} "
            f"attack={self.attack['name']} defence={self.defence['name']}"
        )


def load_campaign(path: str | Path) -> Campaign:
    return load_model(path, Campaign)


def apply_conditions(scenario: Scenario, conditions: dict[str, Any]) -> Scenario:
    """The scenario with sweep values applied (see :class:`Sweep`)."""
    data = scenario.model_dump(mode="json")
    weather = conditions.get("weather")
    if weather is not None:
        data["weather"] = {"preset": weather} if isinstance(weather, str) else weather
    if "time_of_day" in conditions:
        data["weather"] = {
            **data["weather"],
            "sun_altitude_angle": TIME_OF_DAY[conditions["time_of_day"]],
        }
    if "distance" in conditions or "angle" in conditions:
        if not scenario.targets:
            raise ConfigError(
                f"scenario {scenario.name} has no targets; distance and angle "
                "sweeps are measured to its first target",
                field="sweep",
            )
        target = scenario.targets[0].object
        kinds = {
            **{s.name: ("signs", i) for i, s in enumerate(scenario.signs)},
            **{v.name: ("vehicles", i) for i, v in enumerate(scenario.vehicles)},
            **{p.name: ("pedestrians", i) for i, p in enumerate(scenario.pedestrians)},
        }
        group, idx = kinds[target]
        obj = data[group][idx]
        if "distance" in conditions:
            start = obj["s"] - float(conditions["distance"])
            if start < 0 and group != "signs" and obj.get("s") is not None:
                # A vehicle or pedestrian near the road's start moves ahead instead.
                obj["s"] = data["ego"]["start"] + float(conditions["distance"])
                start = data["ego"]["start"]
            if start < 0:
                raise ConfigError(
                    f"scenario {scenario.name}: the ego cannot start "
                    f"{conditions['distance']} m before {target} (at s={obj['s']})",
                    field="sweep.distance",
                )
            data["ego"] = {**data["ego"], "start": start}
        if "angle" in conditions:
            if group != "signs":
                raise ConfigError(
                    f"scenario {scenario.name}: angle sweeps turn a sign, but the "
                    f"first target {target} is not one",
                    field="sweep.angle",
                )
            obj["yaw"] = float(conditions["angle"])
    if "sensor_noise" in conditions:
        k = float(conditions["sensor_noise"])
        sensors = data["sensors"]
        for name in ("camera", "lidar"):
            if sensors.get(name) is not None:
                sensors[name] = {**sensors[name], "noise_stddev": sensors[name]["noise_stddev"] * k}
    return Scenario.model_validate(data)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _attack_body(attack: ComponentRef) -> dict[str, Any]:
    body = attack.model_dump(mode="json")
    if body.get("control") is None:  # named only when set: plain attacks keep their job ids
        body.pop("control", None)
    return body


def expand(campaign: Campaign, base_dir: Path | None = None) -> list[Job]:
    """Every Job of a campaign, in a stable order, with ids and seeds derived from content."""
    scenarios = []
    for ref in campaign.scenarios:
        path = Path(ref)
        if base_dir is not None and not path.is_absolute() and (base_dir / path).is_file():
            path = base_dir / path
        scenarios.append(load_scenario(path if path.is_file() else ref))
    axes: list[tuple[str, list[Any]]] = []
    for key in ("weather", "time_of_day", "distance", "angle", "sensor_noise"):
        values = getattr(campaign.sweep, key)
        if values:
            axes.append(
                (
                    key,
                    [
                        v.model_dump(exclude_none=True) if hasattr(v, "model_dump") else v
                        for v in values
                    ],
                )
            )
    if not campaign.closed_loop and any(m.name == "oracle" for m in campaign.models):
        raise ConfigError(
            "model 'oracle' drives on ground truth: it needs closed_loop: true",
            field="models",
        )
    jobs: list[Job] = []
    for sc in scenarios:
        if campaign.episode is not None:
            sc = sc.model_copy(update={"episode": campaign.episode})
        if campaign.sensors is not None:
            sc = sc.model_copy(update={"sensors": campaign.sensors})
        for combo in itertools.product(*[vals for _, vals in axes]):
            conditions = {k: v for (k, _), v in zip(axes, combo, strict=True)}
            applied = apply_conditions(sc, conditions)
            scenario_data = applied.model_dump(mode="json")
            for model, attack, defence in itertools.product(
                campaign.models, campaign.attacks, campaign.defences
            ):
                body = {
                    "scenario": scenario_data,
                    "conditions": conditions,
                    "model": model.model_dump(mode="json"),
                    "attack": _attack_body(attack),
                    "defence": defence.model_dump(mode="json"),
                    "backend": campaign.backend,
                    "campaign_seed": campaign.seed,
                }
                if campaign.closed_loop:  # named only when set: open-loop jobs keep their ids
                    body["closed_loop"] = True
                job_id = hashlib.sha256(_canonical(body).encode()).hexdigest()[:16]
                jobs.append(
                    Job(
                        job_id,
                        campaign.name,
                        sc.name,
                        scenario_data,
                        conditions,
                        body["model"],
                        body["attack"],
                        body["defence"],
                        campaign.backend,
                        seed_from_id(job_id) % (2**31),
                        campaign.timeout,
                        campaign.carla.model_dump() if campaign.backend == "carla" else None,
                        campaign.closed_loop,
                    )
                )
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise ConfigError(
            "the campaign lists the same job twice (repeated sweep values or scenarios)",
            field="sweep",
        )
    return jobs
