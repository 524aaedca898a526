"""A sign perturbation in the style of RP2 (Eykholt et al. 2018): a printable texture inside a
sticker mask on a sign's face, optimised through the Kornia compositor under expectation over
transformation against a sign classifier, with printability (NPS) and smoothness (TV) terms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from avrobust.attacks.compositor import composite_in_crop
from avrobust.attacks.eot import EOT
from avrobust.attacks.texture_optimiser import TextureSettings
from avrobust.core.errors import ConfigError
from avrobust.core.frame import Frame
from avrobust.core.patch import Patch
from avrobust.core.thresholds import DETECTION_SCORE
from avrobust.models.adapters import ClassifierAdapter


@dataclass
class SignView:
    """One training view: a frame, the sign's surface view in it and the sign's 2D box."""

    frame: Frame
    surface: str
    box: torch.Tensor


def sign_views(frames: list[Frame], surface: str, min_pixels: int = 30) -> list[SignView]:
    """The frames in which ``surface`` (a sign face) is visible, with its sign's box."""
    out = []
    for f in frames:
        view = f.surfaces.get(surface)
        if view is None or view.visible_pixels < min_pixels:
            continue
        ids = f.truth.ids.tolist()
        if view.object_id not in ids:
            continue
        box = f.truth.boxes_2d.xyxy[ids.index(view.object_id)]
        if box[2] > box[0]:
            out.append(SignView(f, surface, box))
    return out


@dataclass
class StickerAttack(TextureSettings):
    """Targeted (``target`` class) or untargeted (``target=None``: leave ``true_class``)
    sticker attack on a classifier of sign crops; calling it returns a :class:`Patch`.

    Hyperparameters (keyword-only) follow RP2 and Thys et al.: NPS weight 0.01, TV weight 2.5, a
    few EOT draws per view and step; ``lr`` is Adam's step on the texture's logits (see
    :mod:`avrobust.attacks.texture_optimiser`). The classifier (and the detector) are held in
    eval mode without gradients while the attack runs and given back as they were.

    >>> attack = StickerAttack(classifier, "stop", "speed_limit_80", steps=200)
    >>> patch = attack(views, face_texture, mask, size_m=(0.75, 0.75))
    """

    classifier: ClassifierAdapter
    true_class: str
    target: str | None = None
    _: KW_ONLY
    batch: int = 8
    eot: str = "standard"
    eot_draws: int = 2
    printer: str | None = None  # a fitted printer model (JSON): optimise what will be printed
    through: Any = None  # an input-transformation defence to optimise through (adaptive)
    # Against the detector-plus-classifier pipeline: the sign must also stay detected (a misread
    # the stack reports), so the detector's sign score joins the loss with this weight.
    detector: Any = None
    detector_weight: float = 1.0
    detector_threshold: float = DETECTION_SCORE
    # Adaptive against a runtime monitor (avrobust.core.components.Monitor, fitted): its score
    # on every crop must stay at or under ``monitor_threshold`` (the deployed threshold), so a
    # hinge on the excess, in units of ``monitor_scale`` (default: the spread of its scores on
    # the clean views), joins the loss. Monitors without gradients give their surrogate (BPDA).
    monitor: Any = None
    monitor_threshold: float = 0.0
    monitor_weight: float = 1.0
    monitor_scale: float | None = None
    seed: int = 0
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from avrobust.export.chart import PrinterModel

        if self.detector is not None and "traffic_sign" not in self.detector.classes:
            raise ConfigError(
                "the pipeline's detector has no traffic_sign class",
                field="detector",
                allowed=", ".join(self.detector.classes),
            )

        self._printer = None if self.printer is None else PrinterModel.load(self.printer)
        classes = self.classifier.classes
        for name in (self.true_class, self.target):
            if name is not None and name not in classes:
                raise ConfigError(
                    f"unknown class {name!r}", field="target", allowed=", ".join(classes)
                )

    def _logits(
        self, views: list[SignView], texture: torch.Tensor, mask: torch.Tensor, eot: EOT, seed: int
    ) -> torch.Tensor:
        return self.classifier(self._crops(views, texture, mask, eot, seed))

    def _crops(
        self, views: list[SignView], texture: torch.Tensor, mask: torch.Tensor, eot: EOT, seed: int
    ) -> torch.Tensor:
        """The classifier's input: each view's crop with the sticker, every EOT draw."""
        if self._printer is not None:
            texture = self._printer(texture)
        x = torch.stack(
            [
                composite_in_crop(
                    v.frame.image,
                    texture,
                    mask,
                    v.frame.surfaces[v.surface],
                    v.box,
                    transform=None if self.through is None else self.through.differentiable,
                )
                for v in views
            ]
        )
        return torch.cat([eot(x, seed * 1000 + k) for k in range(self.eot_draws)])

    def objective(
        self, views: list[SignView], texture: torch.Tensor, mask: torch.Tensor, eot: EOT, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The adversarial loss to minimise over ``views`` and each draw's success."""
        x = self._crops(views, texture, mask, eot, step)
        logits = self.classifier(x)
        classes = self.classifier.classes
        goal = classes.index(self.target if self.target else self.true_class)
        ce = F.cross_entropy(logits, torch.full((logits.shape[0],), goal))
        loss = ce if self.target is not None else -ce
        met = self.success(logits.detach())
        if self.detector is not None:
            det = self._sign_scores(views, texture, mask, eot, step)
            # -log p(sign detected): zero once the detector is sure, never pushing it away.
            loss = loss + self.detector_weight * F.softplus(-torch.logit(det, eps=1e-6)).mean()
            met = met & (det.detach() >= self.detector_threshold).repeat(self.eot_draws)
        if self.monitor is not None:
            doubt = self.monitor.score(x)
            scale = self._monitor_scale(views)
            # Zero once a margin of half a spread under the threshold: no push beyond it. Only
            # on draws already misread: a monitor's doubt is lowest on the clean sign, and a
            # hinge everywhere leads the optimiser back to it (a confident stop) instead of to
            # a confident misreading (Carlini and Wagner's point about attacking detectors).
            excess = F.relu((doubt - self.monitor_threshold) / scale + 0.5)
            loss = loss + self.monitor_weight * (excess * met.float()).mean()
            met = met & (doubt.detach() <= self.monitor_threshold)
        return loss, met

    def _monitor_scale(self, views: list[SignView]) -> float:
        """``monitor_scale``, or the spread of the monitor's scores on the clean views."""
        if self.monitor_scale is None:
            from avrobust.data.crops import square_crop

            with torch.no_grad():
                clean = torch.stack([square_crop(v.frame.image, v.box) for v in views])
                s = self.monitor.score(clean).double()
            self.monitor_scale = float(s.std().clamp(min=1e-9)) if len(s) > 1 else 1.0
        return self.monitor_scale

    def _sign_scores(self, views, texture, mask, eot: EOT, step: int) -> torch.Tensor:
        """The detector's highest ``traffic_sign`` probability over each view's sign, ``[V]``
        (the first EOT draw), differentiable in the texture."""
        from avrobust.attacks.detector_patch import region_scores

        if self._printer is not None:
            texture = self._printer(texture)
        cls = self.detector.classes.index("traffic_sign")
        return region_scores(self.detector, cls, views, texture, mask, eot, step)

    def victims(self) -> tuple[torch.nn.Module, ...]:
        """The models the attack optimises against (held still while it runs)."""
        return tuple(m for m in (self.classifier, self.detector) if m is not None)

    def success(self, logits: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(1)
        classes = self.classifier.classes
        if self.target is not None:
            return pred == classes.index(self.target)
        return pred != classes.index(self.true_class)

    def __call__(
        self,
        views: list[SignView],
        base_texture: torch.Tensor,
        mask: torch.Tensor,
        size_m: tuple[float, float],
        on_step: Callable[[int, float, float], None] | None = None,
    ) -> Patch:
        """Optimise the texture inside ``mask`` (``[1, h, w]``) over the training views."""
        if not views:
            raise ConfigError("no training view shows the sign's surface", field="views")
        gen = torch.Generator().manual_seed(self.seed)
        eot = EOT(self.eot)
        # Start from the sign itself with a little noise.
        init = (base_texture + 0.1 * torch.randn(base_texture.shape, generator=gen)).clamp(
            0.02, 0.98
        )
        result = self.optimise_views(views, init, mask, eot, gen, on_step)
        return Patch(
            texture=result.texture,
            mask=mask.clone(),
            size_m=size_m,
            name=f"{self.true_class}_to_{self.target or 'any'}",
            palette=result.palette,
            provenance={
                "attack": "sign-sticker",
                "true_class": self.true_class,
                "target": self.target,
                "steps": self.steps,
                "lr": self.lr,
                "batch": self.batch,
                "eot": self.eot,
                "eot_draws": self.eot_draws,
                "nps_weight": self.nps_weight,
                "tv_weight": self.tv_weight,
                "palette": self.palette,
                **({"texture_res": self.texture_res} if self.texture_res else {}),
                **({"schedule": self.schedule} if self.schedule != "constant" else {}),
                "seed": self.seed,
                "through": None
                if self.through is None
                else {"defence": self.through.name, **self.through.params},
                "against": "sign-pipeline" if self.detector is not None else "sign-classifier",
                "detector_weight": self.detector_weight if self.detector is not None else None,
                "monitor": None
                if self.monitor is None
                else {
                    "name": self.monitor.name,
                    "threshold": self.monitor_threshold,
                    "weight": self.monitor_weight,
                    "scale": self.monitor_scale,
                },
                "mask_coverage": float(mask.mean()),
                "views": len(views),
                "final_train_success": result.final_success,
                **self.provenance,
            },
        )
