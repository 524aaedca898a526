"""Every command group, registered on the app by importing its module (the order is the
help's order)."""

from avrobust.cli import (  # noqa: F401  isort: skip
    doctor,
    scenario,
    runs,
    dataset,
    train,
    attack,
    export,
    lidar,
    lidar_object,
    attack_eval,
    report,
    defences,
    monitors,
    poison,
    drive,
)
from avrobust.cli.base import app, err_console

__all__ = ["app", "err_console"]
