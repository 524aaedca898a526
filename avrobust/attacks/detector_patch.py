"""A universal adversarial patch on any attack surface (a vehicle's rear, a sign face, a
billboard, the road) against the camera detector, optimised through the Kornia compositor
under expectation over transformation.

Goals, as the literature names them:

* ``hide`` (Thys et al. 2019; Song et al. 2018's disappearance attack): the detector no longer
  finds the object the patch is on. The loss is the detector's highest probability for the
  object's category anywhere over the object's box (slightly enlarged, since EOT moves it).
* ``appear`` (Song et al.'s creation attack): the detector reports an object of ``category``
  where the patch is. The loss is minus the highest probability of that category over the
  patch.

Each view is processed in a window around its region, a multiple of 32 pixels at the camera's
own resolution (the detector is fully convolutional), so a step costs a few small forward
passes rather than full frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

import torch

from avrobust.attacks.compositor import composite
from avrobust.attacks.eot import EOT
from avrobust.attacks.texture_optimiser import TextureSettings
from avrobust.core.errors import ConfigError
from avrobust.core.frame import Frame
from avrobust.core.patch import Patch
from avrobust.core.thresholds import DETECTION_SCORE
from avrobust.models.camera_detector import STRIDE, CameraDetector

Goal = Literal["hide", "appear"]


@dataclass
class PatchView:
    """One training view: a frame, the surface in it, and the region the goal is about
    (the host object's box to hide it; the surface's own box to make something appear)."""

    frame: Frame
    surface: str
    box: torch.Tensor


def patch_views(
    frames: list[Frame], surface: str, goal: Goal, min_pixels: int = 30
) -> list[PatchView]:
    """The frames in which ``surface`` shows at least ``min_pixels`` pixels, with the region
    the goal needs."""
    out = []
    for f in frames:
        view = f.surfaces.get(surface)
        if view is None or view.visible_pixels < min_pixels:
            continue
        if goal == "hide":
            ids = f.truth.ids.tolist()
            if view.object_id not in ids:
                continue
            box = f.truth.boxes_2d.xyxy[ids.index(view.object_id)]
        else:
            ys, xs = torch.nonzero(view.mask, as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        if box[2] > box[0]:
            out.append(PatchView(f, surface, box.float()))
    return out


def detector_window(
    box: torch.Tensor, image_hw: tuple[int, int], min_size: tuple[int, int] = (192, 256)
) -> tuple[int, int, int, int]:
    """A window ``(x0, y0, x1, y1)`` around ``box`` with context on each side, sides
    multiples of 32, inside the image where the image allows."""
    h, w = image_hw
    x1, y1, x2, y2 = (float(v) for v in box)
    ww = min(w - w % 32, max(min_size[1], math.ceil((x2 - x1) * 2.0 / 32) * 32))
    wh = min(h - h % 32, max(min_size[0], math.ceil((y2 - y1) * 2.0 / 32) * 32))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0 = int(min(max(round(cx - ww / 2), 0), w - ww))
    y0 = int(min(max(round(cy - wh / 2), 0), h - wh))
    return x0, y0, x0 + ww, y0 + wh


def region_cells(box: torch.Tensor, window: tuple[int, int, int, int], grow: float = 0.25):
    """The heatmap cells ``(cx0, cy0, cx1, cy1)`` covering ``box`` (enlarged by ``grow`` of
    its size on each side, and by one cell) inside ``window``."""
    x0, y0 = window[0], window[1]
    bx1, by1, bx2, by2 = (float(v) for v in box)
    gw, gh = (bx2 - bx1) * grow, (by2 - by1) * grow
    c0 = max(0, math.floor((bx1 - gw - x0) / STRIDE) - 1)
    r0 = max(0, math.floor((by1 - gh - y0) / STRIDE) - 1)
    c1 = math.ceil((bx2 + gw - x0) / STRIDE) + 1
    r1 = math.ceil((by2 + gh - y0) / STRIDE) + 1
    return c0, r0, c1, r1


def region_scores(
    detector: CameraDetector,
    cls: int,
    views,
    texture: torch.Tensor,
    mask: torch.Tensor,
    eot: EOT,
    seed: int,
    draws: int = 1,
) -> torch.Tensor:
    """The detector's highest probability of class ``cls`` over each view's region (a window
    around it at camera resolution, the texture composited), per EOT draw: ``[len(views) *
    draws]``, view by view, differentiable in the texture."""
    scores = []
    for k, v in enumerate(views):
        img = v.frame.image
        win = detector_window(v.box, img.shape[1:])
        x = composite(img, texture, mask, v.frame.surfaces[v.surface], window=win)[None]
        c0, r0, c1, r1 = region_cells(v.box, win)
        for d in range(draws):
            heat = detector(eot(x, seed * 1000 + k * 10 + d))["heatmap"][0, cls, r0:r1, c0:c1]
            scores.append(heat.sigmoid().max())
    return torch.stack(scores)


def class_index(detector: CameraDetector, category: str) -> int:
    """``category``'s index in the detector's classes (a ConfigError naming the allowed ones
    otherwise)."""
    if category not in detector.classes:
        raise ConfigError(
            f"unknown category {category!r}",
            field="category",
            allowed=", ".join(detector.classes),
        )
    return detector.classes.index(category)


@dataclass
class DetectorPatchAttack(TextureSettings):
    """A patch texture inside ``mask`` on a surface, optimised against ``detector``; calling
    it returns a :class:`Patch`.

    Hyperparameters (keyword-only) as Thys et al. (TV 2.5) and RP2 (NPS 0.01); ``lr`` is Adam's
    step on the texture's logits (see :mod:`avrobust.attacks.texture_optimiser`); ``batch``
    views per step, ``eot_draws`` transformations per view (the detector is held in eval mode
    without gradients while the attack runs, then given back as it was). ``init``:
    ``"surface"`` starts from the surface's own texture, ``"grey"`` from mid-grey with a little
    noise.

    ``texture_res``: when set, the optimiser works on a coarser grid of that many cells across
    (bilinearly upsampled to the texture): a far camera point-samples a few texels of a
    full-resolution texture, and a pattern finer than it sees does not survive a change of
    viewpoint. ``schedule``: ``"constant"`` or ``"cosine"`` (the step size decays to zero).
    ``margin``: log-odds past the threshold at which a view stops adding to the loss (None:
    never).
    """

    detector: CameraDetector
    goal: Goal
    category: str
    _: KW_ONLY
    eot: str = "standard"
    eot_draws: int = 1
    printer: str | None = None
    score_threshold: float = DETECTION_SCORE
    init: Literal["surface", "grey"] = "grey"
    margin: float | None = None
    seed: int = 0
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from avrobust.export.chart import PrinterModel

        self.optimiser()  # checks the optimiser's settings before any rendering
        if self.goal not in ("hide", "appear"):
            raise ConfigError(f"unknown goal {self.goal!r}", field="goal", allowed="hide, appear")
        self._cls = class_index(self.detector, self.category)
        self._printer = None if self.printer is None else PrinterModel.load(self.printer)

    def view_scores(
        self, views: list[PatchView], texture: torch.Tensor, mask: torch.Tensor, eot: EOT, seed: int
    ) -> torch.Tensor:
        """The highest probability of the category over each view's region, ``[len(views) *
        eot_draws]``, differentiable in the texture."""
        if self._printer is not None:
            texture = self._printer(texture)
        return region_scores(
            self.detector, self._cls, views, texture, mask, eot, seed, self.eot_draws
        )

    def objective(
        self, views: list[PatchView], texture: torch.Tensor, mask: torch.Tensor, eot: EOT, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The adversarial loss to minimise over ``views`` and each draw's success."""
        scores = self.view_scores(views, texture, mask, eot, step)
        # Log-odds: no vanishing gradients at saturated probabilities. Without a margin it keeps
        # pushing views that are already over the line, as Thys' max-score loss does; with one
        # (C&W's confidence), a view stops counting once it is ``margin`` past the line, so
        # the hard views (the far ones) get the whole step.
        p = scores.clamp(1e-6, 1 - 1e-6)
        logit = torch.log(p / (1 - p))
        per_view = logit if self.goal == "hide" else -logit
        if self.margin is not None:
            per_view = per_view.clamp(min=-self.margin)
        return per_view.mean(), self.success(scores.detach())

    def victims(self) -> tuple[torch.nn.Module, ...]:
        """The models the attack optimises against (held still while it runs)."""
        return (self.detector,)

    def success(self, scores: torch.Tensor) -> torch.Tensor:
        """Per view: hidden (no peak of the category above the threshold over the object) or
        appeared (one over the patch)."""
        if self.goal == "hide":
            return scores < self.score_threshold
        return scores >= self.score_threshold

    def __call__(
        self,
        views: list[PatchView],
        base_texture: torch.Tensor,
        mask: torch.Tensor,
        size_m: tuple[float, float],
        on_step: Callable[[int, float, float], None] | None = None,
    ) -> Patch:
        """Optimise the texture inside ``mask`` (``[1, h, w]``) over the training views."""
        if not views:
            raise ConfigError("no training view shows the surface", field="views")
        gen = torch.Generator().manual_seed(self.seed)
        eot = EOT(self.eot)
        if self.init == "surface":
            init = base_texture + 0.05 * torch.randn(base_texture.shape, generator=gen)
        else:
            init = 0.5 + 0.1 * torch.randn(base_texture.shape, generator=gen)
        result = self.optimise_views(views, init, mask, eot, gen, on_step)
        return Patch(
            texture=result.texture,
            mask=mask.clone(),
            size_m=size_m,
            name=f"{self.goal}_{self.category}",
            palette=result.palette,
            provenance={
                "attack": f"detector-patch-{self.goal}",
                "goal": self.goal,
                "category": self.category,
                "steps": self.steps,
                "lr": self.lr,
                "batch": self.batch,
                "eot": self.eot,
                "eot_draws": self.eot_draws,
                "nps_weight": self.nps_weight,
                "tv_weight": self.tv_weight,
                "palette": self.palette,
                "score_threshold": self.score_threshold,
                "init": self.init,
                "texture_res": self.texture_res,
                "schedule": self.schedule,
                "margin": self.margin,
                "seed": self.seed,
                "views": len(views),
                "final_train_success": result.final_success,
                **self.provenance,
            },
        )
