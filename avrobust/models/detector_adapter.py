"""User detectors behind one small adapter: anything that maps ``[3, H, W]`` images to
torchvision-style predictions (``{"boxes", "scores", "labels"}`` per image), as torchvision's
detection models do, becomes a model that returns :class:`~avrobust.core.detections.Detections`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from avrobust.core.detections import Detections
from avrobust.core.errors import ModelError
from avrobust.core.frame import Frame
from avrobust.core.thresholds import DETECTION_SCORE


class DetectorAdapter(nn.Module):
    """Wraps a torchvision-style detector.

    Args:
        module: takes a list of ``[3, H, W]`` images in [0, 1] and returns one dict per image
            with ``boxes`` (``[N, 4]`` xyxy pixels), ``scores`` and ``labels`` (int64).
        classes: name of each label index the model emits (index 0 is torchvision's background
            and is usually ``"__background__"``).
        score_threshold: detections below it are dropped.
    """

    def __init__(
        self, module: nn.Module, classes: tuple[str, ...], score_threshold: float = DETECTION_SCORE
    ) -> None:
        super().__init__()
        self.module = module
        self.classes = tuple(classes)
        self.score_threshold = score_threshold

    def forward(self, images: torch.Tensor | list[torch.Tensor]) -> Detections:
        """Batched detections for ``[B, 3, H, W]`` images (or a list of ``[3, H, W]``)."""
        batch = list(images) if isinstance(images, torch.Tensor) else images
        for img in batch:
            if img.dim() != 3 or img.shape[0] != 3:
                raise ModelError(f"images must be [3, H, W], got {tuple(img.shape)}")
        outputs = self.module(batch)
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(batch):
            raise ModelError("the detector must return one prediction per image")
        items = []
        for out in outputs:
            try:
                boxes, scores, labels = out["boxes"], out["scores"], out["labels"]
            except (KeyError, TypeError):
                raise ModelError("each prediction needs 'boxes', 'scores' and 'labels'") from None
            if labels.numel() and int(labels.max()) >= len(self.classes):
                raise ModelError(
                    f"the detector emitted label {int(labels.max())} but only "
                    f"{len(self.classes)} class names were given"
                )
            keep = scores >= self.score_threshold
            items.append(Detections(boxes[keep], scores[keep], labels[keep], "2d", self.classes))
        return Detections.batch(items)

    def __call__(self, x):  # a Frame (campaign use) or images
        if isinstance(x, Frame):
            if x.image is None:
                raise ModelError("this detector needs a camera image")
            self.module.eval()
            with torch.no_grad():
                return super().__call__(x.image[None]).unbatch()[0]
        return super().__call__(x)


def load_detector(
    spec: str | Path | nn.Module,
    classes: tuple[str, ...] | None = None,
    score_threshold: float = DETECTION_SCORE,
) -> DetectorAdapter:
    """A detector from a module, a TorchScript file, an avrobust weights file
    (``kind: camera-detector``) or ``package.module:callable``. ``classes`` names the label
    indices; avrobust's own detector carries them."""
    if isinstance(spec, nn.Module):
        module = spec
    elif isinstance(spec, str) and ":" in spec and not Path(spec).exists():
        mod_name, _, attr = spec.partition(":")
        try:
            module = getattr(importlib.import_module(mod_name), attr)()
        except (ImportError, AttributeError) as exc:
            raise ModelError(f"cannot import {spec!r} ({exc})", field="model") from None
    else:
        path = Path(spec)
        if not path.is_file():
            raise ModelError("no such model file", file=path)
        module = _load_file(path)
    if not isinstance(module, nn.Module):
        raise ModelError(f"{spec} did not give an nn.Module", field="model")
    if classes is None:
        classes = tuple(getattr(module, "classes", ()) or ())
    if not classes:
        raise ModelError(
            "the detector's class names are needed (pass classes=...)", field="classes"
        )
    module.eval()
    return DetectorAdapter(module, classes, score_threshold)


def _load_file(path: Path) -> nn.Module:
    """A TorchScript archive or avrobust weights of the camera detector."""
    import warnings
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            scripted = any("/code/" in n for n in zf.namelist())
        if scripted:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                try:
                    return torch.jit.load(str(path), map_location="cpu")
                except Exception as exc:
                    raise ModelError(
                        f"not a loadable TorchScript detector ({exc})".splitlines()[0], file=path
                    ) from None
    else:  # torch.save writes zip archives too: anything else is neither
        raise ModelError("neither a TorchScript archive nor avrobust weights", file=path)
    from avrobust.models.camera_detector import TorchvisionStyle, load_camera_detector

    return TorchvisionStyle(load_camera_detector(path))
