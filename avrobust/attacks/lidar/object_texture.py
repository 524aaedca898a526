"""The adversarial object's camera side: a printable texture for it, optimised against the
camera detector through the embedded simulator's differentiable rendering (MSF-ADV, Cao et
al. 2021, fools camera and LiDAR with one physical object).

The shape comes first (:mod:`.adv_object`, against the LiDAR side); with it fixed, every step
re-renders a few training views with the object attached to its host and the current texture
(the image is differentiable in the texture, so occlusion, shading and the host's shadow are
the simulator's own), and lowers the camera detector's highest probability of the host's
category over the region where the host would be seen, under expectation over
transformation, with the printability (NPS) and smoothness (TV) terms of the patch attacks.
Both fusion detectors read the camera through that detector: late fusion re-scores LiDAR boxes
with its support, PointPainting paints its scores on the points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

import torch

from avrobust.attacks.detector_patch import class_index, detector_window, region_cells
from avrobust.attacks.eot import EOT
from avrobust.attacks.frozen import frozen
from avrobust.attacks.texture_optimiser import TextureSettings
from avrobust.core.errors import ConfigError
from avrobust.core.thresholds import DETECTION_SCORE
from avrobust.models.camera_detector import CameraDetector


class TexturedScene(Protocol):
    """What the attack needs of a started backend (the embedded one): textures to draw on named
    surfaces, and a render of its frame that is differentiable in them."""

    textures: dict[str, torch.Tensor]

    def render(self, index: int, truth: bool = True) -> Any: ...


@dataclass
class ObjectView:
    """A training view: a started backend whose scene carries the object, and the host's 2D
    box ``[4]`` (xyxy) where the camera sees it without the object (the region to clear)."""

    backend: TexturedScene
    box: torch.Tensor


def render_with(view: ObjectView, surface: str, texture: torch.Tensor) -> torch.Tensor:
    """The view's ``[3, H, W]`` image with ``texture`` on the object, differentiable in it."""
    view.backend.textures = {surface: texture}
    return view.backend.render(0, truth=False).frame.image


@dataclass
class ObjectTextureAttack(TextureSettings):
    """Hyperparameters (keyword-only) as the detector patch's (NPS 0.01, TV 2.5; ``lr`` is
    Adam's step on the texture's logits, see :mod:`avrobust.attacks.texture_optimiser`);
    ``batch`` views per step; ``texture_res`` optimises a coarser grid of that many cells across
    (None: every texel). The texture kept is the one of the lowest loss over five steps. The
    detector is held in eval mode without gradients while the attack runs."""

    detector: CameraDetector
    category: str = "car"
    _: KW_ONLY
    steps: int = 100
    batch: int = 3
    eot: str = "standard"
    score_threshold: float = DETECTION_SCORE
    seed: int = 0

    def __post_init__(self) -> None:
        self._cls = class_index(self.detector, self.category)

    def victims(self) -> tuple[torch.nn.Module, ...]:
        return (self.detector,)

    def scores(
        self, views: list[ObjectView], surface: str, texture: torch.Tensor, eot: EOT, seed: int
    ) -> torch.Tensor:
        """``[len(views)]``: the detector's highest probability of the category over each
        view's host region, the object re-rendered with ``texture``."""
        out = []
        for k, v in enumerate(views):
            image = render_with(v, surface, texture)
            x0, y0, x1, y1 = win = detector_window(v.box, tuple(image.shape[1:]))
            crop = eot(image[None, :, y0:y1, x0:x1], seed * 1000 + k)
            c0, r0, c1, r1 = region_cells(v.box, win)
            heat = self.detector(crop)["heatmap"][0, self._cls, r0:r1, c0:c1]
            out.append(heat.sigmoid().max())
        return torch.stack(out)

    def __call__(
        self,
        views: list[ObjectView],
        surface: str,
        shape: tuple[int, int],
        on_step: Callable[[int, float, float], None] | None = None,
    ) -> tuple[torch.Tensor, list[float]]:
        """The optimised ``[3, h, w]`` texture (``shape`` is ``(h, w)``) and the loss by step."""
        if not views:
            raise ConfigError("no training view shows the host", field="views")
        gen = torch.Generator().manual_seed(self.seed)
        eot = EOT(self.eot)
        init = 0.5 + 0.1 * torch.randn((3, *shape), generator=gen)

        def objective(idx: list[int], texture: torch.Tensor, step: int):
            p = self.scores([views[i] for i in idx], surface, texture, eot, step)
            p = p.clamp(1e-6, 1 - 1e-6)
            # Log-odds, as the patch attacks: no vanishing gradient at saturated scores.
            return torch.log(p / (1 - p)).mean(), p < self.score_threshold

        try:
            with frozen(*self.victims()):
                result = self.optimiser(keep="best")(
                    init, len(views), objective, gen, None, on_step
                )
        finally:
            for v in views:
                v.backend.textures = {}
        return result.texture, [h["adversarial"] for h in result.history]
