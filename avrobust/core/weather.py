"""Weather, named field for field as CARLA's ``carla.WeatherParameters`` so that one scenario
drives both backends.

Angles are degrees here (people write them, as in CARLA); whatever a backend derives from them is
in radians. Sun azimuth is measured in the world's x-y plane from +x towards +y.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from avrobust.core.errors import UnknownNameError


@dataclass(frozen=True)
class Weather:
    """The fields of ``carla.WeatherParameters`` that both backends render (0-100 scales as in
    CARLA; angles in degrees)."""

    cloudiness: float = 10.0
    precipitation: float = 0.0
    precipitation_deposits: float = 0.0
    wind_intensity: float = 10.0
    sun_azimuth_angle: float = 45.0
    sun_altitude_angle: float = 60.0
    fog_density: float = 0.0
    fog_distance: float = 0.0
    wetness: float = 0.0
    fog_falloff: float = 0.2
    scattering_intensity: float = 1.0
    mie_scattering_scale: float = 0.03
    rayleigh_scattering_scale: float = 0.0331
    dust_storm: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "cloudiness",
            "precipitation",
            "precipitation_deposits",
            "wind_intensity",
            "fog_density",
            "wetness",
            "dust_storm",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 100.0:
                raise ValueError(f"weather.{name} must be in [0, 100], got {v}")
        if not -90.0 <= self.sun_altitude_angle <= 90.0:
            raise ValueError("weather.sun_altitude_angle must be in [-90, 90] degrees")
        if self.fog_distance < 0:
            raise ValueError("weather.fog_distance must be >= 0 metres")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def replace(self, **changes: float) -> Weather:
        return Weather(**{**self.to_dict(), **changes})


# CARLA 0.9.16's presets, field for field as carla.WeatherParameters.<Name> holds them (read off
# the carla client package), in the constructor's order, so campaigns can name them.
PRESETS: dict[str, Weather] = {
    "ClearNight": Weather(5, 0, 0, 10, -1, -90, 60, 75, 0, 1, 1, 0.03, 0.0331, 0),
    "ClearNoon": Weather(5, 0, 0, 10, -1, 45, 2, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "ClearSunset": Weather(5, 0, 0, 10, -1, 15, 2, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "CloudyNight": Weather(60, 0, 0, 10, -1, -90, 60, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "CloudyNoon": Weather(60, 0, 0, 10, -1, 45, 3, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "CloudySunset": Weather(60, 0, 0, 10, -1, 15, 3, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "DustStorm": Weather(100, 0, 0, 100, -1, 45, 2, 0.75, 0, 0.1, 1, 0.03, 0.0331, 100),
    "HardRainNight": Weather(100, 100, 90, 100, -1, -90, 100, 0.75, 100, 0.1, 1, 0.03, 0.0331, 0),
    "HardRainNoon": Weather(100, 100, 90, 100, -1, 45, 7, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "HardRainSunset": Weather(100, 100, 90, 100, -1, 15, 7, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "MidRainSunset": Weather(60, 60, 60, 60, -1, 15, 3, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "MidRainyNight": Weather(80, 60, 60, 60, -1, -90, 60, 0.75, 80, 0.1, 1, 0.03, 0.0331, 0),
    "MidRainyNoon": Weather(60, 60, 60, 60, -1, 45, 3, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "SoftRainNight": Weather(60, 30, 50, 30, -1, -90, 60, 0.75, 60, 0.1, 1, 0.03, 0.0331, 0),
    "SoftRainNoon": Weather(20, 30, 50, 30, -1, 45, 3, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "SoftRainSunset": Weather(20, 30, 50, 30, -1, 15, 2, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "WetCloudyNight": Weather(60, 0, 50, 10, -1, -90, 60, 0.75, 60, 0.1, 1, 0.03, 0.0331, 0),
    "WetCloudyNoon": Weather(60, 0, 50, 10, -1, 45, 3, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "WetCloudySunset": Weather(60, 0, 50, 10, -1, 15, 2, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "WetNight": Weather(5, 0, 50, 10, -1, -90, 60, 75, 60, 1, 1, 0.03, 0.0331, 0),
    "WetNoon": Weather(5, 0, 50, 10, -1, 45, 3, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    "WetSunset": Weather(5, 0, 50, 10, -1, 15, 2, 0.75, 0, 0.1, 1, 0.03, 0.0331, 0),
    # Not CARLA presets: the conditions our sweeps need by name.
    "Dusk": Weather(30, 0, 0, 10, 200, 3, 2, 0.75, 0, 0.1),
    "Fog": Weather(40, 0, 0, 5, 45, 40, 50, 0.0, 0, 0.2),
    "DenseFog": Weather(60, 0, 0, 5, 45, 40, 100, 0.0, 0, 0.2),
}


def preset(name: str) -> Weather:
    """A preset by name (``ClearNoon``, ``HardRainNoon``, ``ClearNight``, ``Fog``, ...)."""
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown weather preset {name!r}", field="weather", allowed=", ".join(PRESETS)
        )
    return PRESETS[name]


#: The condition groups model cards and reports break results down by.
CONDITION_GROUPS = ("clear", "rain", "fog", "night")


def condition_group(weather: Weather | str) -> str:
    """``night`` (sun below 5 degrees: night and dusk), else ``fog`` (fog or dust density at
    least 20), else ``rain`` (falling rain or a wet road), else ``clear``."""
    w = preset(weather) if isinstance(weather, str) else weather
    if w.sun_altitude_angle < 5.0:
        return "night"
    if w.fog_density >= 20.0 or w.dust_storm >= 20.0:
        return "fog"
    if w.precipitation > 0 or w.precipitation_deposits > 0 or w.wetness > 0:
        return "rain"
    return "clear"
