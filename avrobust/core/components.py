"""What the campaign runner asks of the components a campaign names: one protocol per kind
(model, attack, defence, runtime monitor), each with a small base class that supplies the
do-nothing parts, so the runner calls methods and never probes with ``getattr``.

A component is registered under a name in :mod:`avrobust.campaign.components`; the registry
builds it from the campaign's parameters. Structural typing means a user's class need not inherit
the base, only have its methods; inheriting saves writing the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from avrobust.core.boxes import Box3D
from avrobust.core.detections import Detections
from avrobust.core.frame import Frame


@dataclass(frozen=True)
class Alarm:
    """What a consistency check flagged in a frame: ``kind`` (a short fixed name, e.g.
    ``vanished``), a human-readable ``detail`` and, when it is about one detection of the
    frame's output, that detection's ``index`` (a fail-safe reacts to it)."""

    kind: str
    detail: str = ""
    index: int | None = None


@dataclass(frozen=True)
class MadeTarget:
    """A target an attack put into a frame (a spoofed phantom): recorded like the scenario's
    targets under ``name``, but the model is right when it does *not* report it. ``box``: one
    3D box in the LiDAR frame; ``points``: the returns the attack added; the drive-by fails when
    the model reports it in ``min_frames`` consecutive frames (a planner brakes for a tracked
    obstacle)."""

    name: str
    category: str
    box: Box3D
    points: int = 0
    min_frames: int = 3


@runtime_checkable
class Perception(Protocol):
    """A model as the runner calls it, possibly behind a defence: one frame in, detections
    (or None for ``model: none``) out, and the alarms raised since the last call."""

    def __call__(self, frame: Frame) -> Detections | None: ...

    def take_alarms(self) -> list[Alarm]: ...


class CampaignModel(Protocol):
    """``categories``: the target categories it perceives (None: all); ``label_level``:
    ``category`` for detectors (right when they name the target's category), ``class`` for
    recognisers (right when they name the target's expected class)."""

    name: str
    categories: tuple[str, ...] | None
    label_level: Literal["class", "category"]

    def __call__(self, frame: Frame) -> Detections | None: ...

    def take_alarms(self) -> list[Alarm]: ...

    def provenance(self) -> dict: ...


class CampaignAttack(Protocol):
    """An attack in a campaign: objects it adds to the scene before the backend starts
    (``attachments``), what it changes once the scene is built (``prepare``: a patch painted on a
    surface), what it does to each frame's sensor data in flight (``perturb``: LiDAR
    spoofing), and the targets it made in a frame (``made_targets``)."""

    name: str

    def attachments(self, scenario: Any) -> Sequence[Any]: ...

    def prepare(self, backend: Any, scenario: Any) -> None: ...

    def perturb(self, frame: Frame, model: CampaignModel) -> Frame: ...

    def made_targets(self, frame: Frame) -> list[MadeTarget]: ...

    def provenance(self) -> dict: ...


class CampaignDefence(Protocol):
    """A defence: ``wrap`` puts a model behind it (one wrapped model per job, so a check may
    keep state across frames); ``raises_alarms`` says whether it flags frames (the report
    lists its alarms, even none)."""

    name: str
    raises_alarms: bool

    def wrap(self, model: CampaignModel) -> Perception: ...

    def fail_safe(self) -> Any: ...

    def provenance(self) -> dict: ...


@runtime_checkable
class Monitor(Protocol):
    """A runtime monitor of one model's inputs (a sign classifier's crops, a detector's boxes):
    fitted on in-distribution inputs and their labels, it scores how much each input should be
    doubted, higher meaning more doubtful, so that one calibrated threshold turns scores into
    alarms. ``score`` is differentiable in ``inputs`` where the method allows (the adaptive
    attacker needs it); ``differentiable`` says whether it is."""

    name: str
    differentiable: bool

    def fit(self, inputs: Any, labels: Any) -> Monitor: ...

    def score(self, inputs: Any) -> Any: ...


class ModelBase:
    """Defaults for a campaign model: perceives every category, names classes, raises no
    alarms, describes nothing. A subclass writes ``__call__`` (the registry refuses one
    without it)."""

    name: str = "model"
    categories: tuple[str, ...] | None = None
    label_level: Literal["class", "category"] = "class"

    def take_alarms(self) -> list[Alarm]:
        return []

    def provenance(self) -> dict:
        return {}


class AttackBase:
    """Defaults for a campaign attack: adds nothing, changes nothing, makes no target."""

    name: str = "attack"

    def attachments(self, scenario: Any) -> Sequence[Any]:
        return ()

    def prepare(self, backend: Any, scenario: Any) -> None:
        return None

    def perturb(self, frame: Frame, model: CampaignModel) -> Frame:
        return frame

    def made_targets(self, frame: Frame) -> list[MadeTarget]:
        return []

    def provenance(self) -> dict:
        return {}


class DefenceBase:
    """Defaults for a defence: leaves the model as it is and raises no alarms."""

    name: str = "defence"
    raises_alarms: ClassVar[bool] = False

    def wrap(self, model: CampaignModel) -> Perception:
        return model

    def fail_safe(self) -> Any:
        """How the car reacts to this defence's alarms in closed loop
        (:class:`avrobust.core.fail_safe.FailSafe`), or None: it drives on as it would."""
        return None

    def provenance(self) -> dict:
        return {}
