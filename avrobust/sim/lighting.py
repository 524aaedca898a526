"""The light the embedded renderer derives from :class:`~avrobust.core.weather.Weather`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avrobust.core.weather import Weather


@dataclass(frozen=True)
class Lighting:
    """What the renderer needs, derived from :class:`Weather`.

    Attributes:
        sun_dir: ``[3]`` unit vector towards the sun (world frame).
        sun: ``[3]`` direct sun irradiance (0 at night).
        ambient: ``[3]`` sky light on a surface facing up.
        sky_zenith, sky_horizon: ``[3]`` sky colours.
        fog_beta: extinction per metre (camera); fog_start: metres before fog begins.
        airlight: ``[3]`` colour of the fog.
        rain: 0-1 rain intensity; wet: 0-1 road wetness.
        headlights: whether the ego's headlights light the scene (sun below the horizon).
    """

    sun_dir: torch.Tensor
    sun: torch.Tensor
    ambient: torch.Tensor
    sky_zenith: torch.Tensor
    sky_horizon: torch.Tensor
    fog_beta: float
    fog_start: float
    airlight: torch.Tensor
    rain: float
    wet: float
    headlights: bool


def fog_extinction(weather: Weather) -> float:
    """Extinction coefficient (1/m): a light haze always, up to 0.08/m (about 50 m visibility,
    by the 2% contrast rule ``3.9 / beta``) at ``fog_density`` 100, about 200 m at 50."""
    return 0.0006 + 0.08 * (weather.fog_density / 100.0) ** 2


def lighting(weather: Weather) -> Lighting:
    alt = math.radians(weather.sun_altitude_angle)
    az = math.radians(weather.sun_azimuth_angle)
    sun_dir = torch.tensor(
        [math.cos(alt) * math.cos(az), math.cos(alt) * math.sin(az), math.sin(alt)]
    )
    cloud = weather.cloudiness / 100.0
    # Direct light fades near the horizon (air mass) and behind clouds; below it, none.
    elevation = max(math.sin(alt), 0.0)
    direct = (elevation**0.4) * (1.0 - 0.85 * cloud) * (1.0 - 0.5 * weather.precipitation / 100)
    warm = 1.0 - min(1.0, elevation / 0.35)  # reddish light when the sun is low
    sun_colour = torch.tensor([1.0, 0.93 - 0.25 * warm, 0.85 - 0.45 * warm])
    # Sky light: day, through twilight (sun down to -8 degrees), to night.
    day = min(1.0, max(0.0, (weather.sun_altitude_angle + 8.0) / 20.0))
    sky_level = 0.05 + 0.40 * day * (1.0 - 0.25 * weather.precipitation / 100)
    ambient = sky_level * torch.tensor([0.85, 0.92, 1.05 - 0.15 * cloud])
    grey = torch.tensor([0.75, 0.77, 0.80])
    zenith = torch.tensor([0.22, 0.38, 0.72]) * (1 - cloud) + grey * 0.75 * cloud
    horizon = torch.tensor([0.58, 0.66, 0.78]) * (1 - cloud) + grey * 0.85 * cloud
    horizon = horizon + warm * day * torch.tensor([0.25, 0.05, -0.2])
    zenith, horizon = zenith * (0.05 + 0.95 * day), horizon * (0.05 + 0.95 * day)
    airlight = (0.02 + 0.83 * day) * torch.tensor([0.78, 0.80, 0.82])
    return Lighting(
        sun_dir=sun_dir,
        sun=direct * 0.95 * sun_colour,
        ambient=ambient,
        sky_zenith=zenith.clamp(0, 1),
        sky_horizon=horizon.clamp(0, 1),
        fog_beta=fog_extinction(weather),
        fog_start=weather.fog_distance,
        airlight=airlight,
        rain=weather.precipitation / 100.0,
        wet=max(weather.wetness, weather.precipitation_deposits) / 100.0,
        headlights=weather.sun_altitude_angle < 2.0,
    )
