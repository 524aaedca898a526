"""The backend factory: a backend by name, with its settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from avrobust.core.errors import ConfigError

#: The backends a scenario or campaign can name.
BACKENDS = ("embedded", "carla")


def make_backend(name: str, carla: dict | None = None, attachments: Sequence = ()) -> Any:
    """The backend a job runs on; ``carla``: the campaign's CARLA settings (servers, timeout);
    ``attachments``: meshes fixed to scene objects (the adversarial object), embedded only."""
    if name == "embedded":
        from avrobust.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(attachments)
    if attachments:
        raise ConfigError(
            "an attached object (the adversarial object) needs the embedded backend: CARLA "
            "cannot add a mesh at run time",
            field="backend",
        )
    if name == "carla":
        from avrobust.backends.carla.backend import PooledCarlaBackend

        settings = carla or {}
        return PooledCarlaBackend(
            settings.get("servers", ["localhost:2000"]), settings.get("timeout", 10.0)
        )
    raise ConfigError(f"unknown backend {name!r}", field="backend", allowed=", ".join(BACKENDS))
