"""Names that campaigns use for models, attacks and defences, and what they build.

Each entry is a factory taking the reference's ``params``. Later packages register their
components here explicitly (see :func:`load_builtin_components`), so what runs stays visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from avrobust.core.errors import ConfigError

Kind = Literal["model", "attack", "defence"]


@dataclass(frozen=True)
class Component:
    kind: Kind
    name: str
    factory: Callable[..., Any]
    description: str
    # Matched controls this attack has: control name -> the parameters that turn the attack
    # into its control (the same budget, mask or shape, not optimised).
    controls: dict[str, dict[str, Any]] | None = None


_REGISTRY: dict[Kind, dict[str, Component]] = {"model": {}, "attack": {}, "defence": {}}


def register(
    kind: Kind, name: str, description: str, controls: dict[str, dict[str, Any]] | None = None
):
    """Decorator: register ``factory(**params)`` under ``name``; an attack's ``controls`` map
    each matched control it has to the parameters that make it (see :func:`params_of`)."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[kind][name] = Component(kind, name, factory, description, controls)
        return factory

    return wrap


def names(kind: Kind) -> list[str]:
    load_builtin_components()
    return sorted(_REGISTRY[kind])


def describe(kind: Kind) -> list[Component]:
    load_builtin_components()
    return [_REGISTRY[kind][n] for n in sorted(_REGISTRY[kind])]


def controls_of(name: str) -> list[str]:
    """The matched controls the attack ``name`` has (none for an unknown name)."""
    load_builtin_components()
    entry = _REGISTRY["attack"].get(name)
    return list(entry.controls or {}) if entry else []


def params_of(kind: Kind, ref: dict[str, Any]) -> dict[str, Any]:
    """The factory's parameters for ``ref``: its ``params``, and for an attack reference with
    a ``control``, the parameters that turn it into that control."""
    params = dict(ref.get("params") or {})
    control = ref.get("control")
    if control is not None:
        params.update((_REGISTRY[kind][ref["name"]].controls or {})[control])
    return params


def check(kind: Kind, ref: dict[str, Any], file: Any = None, field: str | None = None) -> None:
    """Refuse, before any job runs, a reference to an unknown name, with parameters its
    factory does not take or with a control it does not have (a ConfigError naming ``file``
    and ``field``); builds nothing."""
    import inspect

    load_builtin_components()
    name = ref.get("name")
    field = field or f"{kind}s"
    if name not in _REGISTRY[kind]:
        raise ConfigError(
            f"unknown {kind} {name!r}",
            file=file,
            field=f"{field}.name",
            allowed=", ".join(sorted(_REGISTRY[kind])),
        )
    control = ref.get("control")
    if control is not None and control not in (_REGISTRY[kind][name].controls or {}):
        raise ConfigError(
            f"{kind} {name!r} has no control {control!r}",
            file=file,
            field=f"{field}.control",
            allowed=", ".join(_REGISTRY[kind][name].controls or {}) or "none",
        )
    factory = _REGISTRY[kind][name].factory
    try:
        inspect.signature(factory).bind(**params_of(kind, ref))
    except TypeError as exc:
        takes = ", ".join(inspect.signature(factory).parameters) or "none"
        raise ConfigError(
            f"bad parameters for {kind} {name!r}: {exc}",
            file=file,
            field=f"{field}.params",
            allowed=takes,
        ) from None


def create(kind: Kind, ref: dict[str, Any]) -> Any:
    """Build the component a campaign reference ``{"name": ..., "params": {...}}`` names."""
    check(kind, ref)
    name = ref.get("name")
    try:
        component = _REGISTRY[kind][name].factory(**params_of(kind, ref))
    except TypeError as exc:
        raise ConfigError(
            f"bad parameters for {kind} {name!r}: {exc}", field=f"{kind}s.params"
        ) from None
    missing = [m for m in _NEEDS[kind] if not hasattr(component, m)]
    if missing:
        raise ConfigError(
            f"{kind} {name!r} ({type(component).__name__}) lacks {', '.join(missing)}; inherit "
            f"avrobust.core.components.{_BASES[kind]} for the defaults",
            field=f"{kind}s",
        )
    return component


# What the runner calls on each kind (the protocols of avrobust.core.components): checked when
# a component is built, so a user's class missing one fails before any job starts rendering.
_NEEDS: dict[Kind, tuple[str, ...]] = {
    "model": ("name", "categories", "label_level", "take_alarms", "provenance", "__call__"),
    "attack": ("name", "attachments", "prepare", "perturb", "made_targets", "provenance"),
    "defence": ("name", "raises_alarms", "wrap", "fail_safe", "provenance"),
}
_BASES = {"model": "ModelBase", "attack": "AttackBase", "defence": "DefenceBase"}


_loaded = False


def load_builtin_components() -> None:
    """Import the modules that register avrobust's own components (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from avrobust.campaign import components  # noqa: F401  (registers on import)
