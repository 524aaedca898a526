"""The fail-safe configuration a monitoring defence hands the closed loop (what the car does
when its monitors doubt what it perceives; :mod:`avrobust.driving.fail_safe` carries it out).
A plain value here so that defences can validate it without importing the driving package."""

from __future__ import annotations

from dataclasses import dataclass

from avrobust.core.classes import SIGN_TYPES
from avrobust.core.errors import ConfigError

#: Alarms about one sign detection (its ``index`` says which).
SIGN_ALARMS = ("doubted_sign", "unreadable_sign")


@dataclass(frozen=True)
class FailSafe:
    """``doubted_sign``: the class a doubted or unreadable sign is taken as (None: left as
    read). ``persist`` of ``window`` frames with alarms start the minimal-risk manoeuvre
    (``persist`` 0: never); ``mrm_speed`` m/s, ``mrm_decel`` m/s^2."""

    doubted_sign: str | None = "stop"
    persist: int = 0
    window: int = 10
    mrm_speed: float = 0.0
    mrm_decel: float = 3.0

    def __post_init__(self) -> None:
        if self.doubted_sign is not None and self.doubted_sign not in SIGN_TYPES:
            raise ConfigError(
                f"unknown sign class {self.doubted_sign!r}",
                field="fail_safe.doubted_sign",
                allowed=", ".join(SIGN_TYPES),
            )
        if not 0 <= self.persist <= self.window or self.window < 1:
            raise ConfigError(
                f"need 0 <= persist <= window and window >= 1, got {self.persist}, {self.window}",
                field="fail_safe.persist",
            )
        if self.mrm_speed < 0 or self.mrm_decel <= 0:
            raise ConfigError("mrm_speed must be >= 0 and mrm_decel > 0", field="fail_safe")

    @classmethod
    def from_params(cls, params: dict | None) -> FailSafe | None:
        if params is None:
            return None
        if not isinstance(params, dict):
            raise ConfigError("fail_safe must be a mapping", field="fail_safe")
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(params) - known)
        if bad:
            raise ConfigError(
                f"unknown fail_safe keys {bad}", field="fail_safe", allowed=", ".join(known)
            )
        return cls(**params)
