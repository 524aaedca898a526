"""User classifiers behind one small typed adapter, so attacks and metrics see only this.

A classifier can come as an ``nn.Module``, a TorchScript file, an avrobust weights file, or
``package.module:callable`` returning a module. The adapter states the input the model wants
(size, value range, channel order, normalisation) and converts avrobust's crops (``[B, 3, H, W]``
RGB in [0, 1]) to it, differentiably, so gradients of attacks reach the input.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from avrobust.core.errors import ModelError


@dataclass(frozen=True)
class InputFormat:
    """What a classifier expects.

    Attributes:
        size: ``(height, width)`` the crop is resized to.
        value_range: ``(low, high)``: [0, 1] images are scaled to it (e.g. (0, 255)).
        channel_order: ``rgb`` or ``bgr``.
        mean, std: per-channel normalisation applied after scaling, or None.
    """

    size: tuple[int, int] = (64, 64)
    value_range: tuple[float, float] = (0.0, 1.0)
    channel_order: str = "rgb"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.channel_order not in ("rgb", "bgr"):
            raise ModelError(
                f"channel_order must be rgb or bgr, got {self.channel_order!r}",
                field="channel_order",
            )


class ClassifierAdapter(nn.Module):
    """``forward(crops)`` takes ``[B, 3, H, W]`` RGB in [0, 1] and returns ``[B, C]`` logits
    over ``classes``."""

    def __init__(
        self, module: nn.Module, classes: tuple[str, ...], fmt: InputFormat = InputFormat()
    ) -> None:
        super().__init__()
        self.module = module
        self.classes = tuple(classes)
        self.fmt = fmt

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.dim() != 4 or crops.shape[1] != 3:
            raise ModelError(f"crops must be [B, 3, H, W], got {tuple(crops.shape)}")
        x = crops
        if tuple(x.shape[2:]) != self.fmt.size:
            x = F.interpolate(
                x, size=self.fmt.size, mode="bilinear", align_corners=False, antialias=True
            )
        lo, hi = self.fmt.value_range
        x = x * (hi - lo) + lo
        if self.fmt.channel_order == "bgr":
            x = x.flip(1)
        if self.fmt.mean is not None:
            x = x - torch.tensor(self.fmt.mean, device=x.device).view(1, 3, 1, 1)
        if self.fmt.std is not None:
            x = x / torch.tensor(self.fmt.std, device=x.device).view(1, 3, 1, 1)
        logits = self.module(x)
        if logits.dim() != 2 or logits.shape[1] != len(self.classes):
            raise ModelError(
                f"the model returned {tuple(logits.shape)}; expected "
                f"[B, {len(self.classes)}] logits for classes {self.classes}"
            )
        return logits

    def predict(self, crops: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Class names and their probabilities."""
        with torch.no_grad():
            p = self(crops).softmax(1)
        conf, idx = p.max(1)
        return [self.classes[i] for i in idx.tolist()], conf


def load_classifier(
    spec: str | Path | nn.Module,
    classes: tuple[str, ...] | None = None,
    fmt: InputFormat | None = None,
) -> ClassifierAdapter:
    """A classifier from a module, a TorchScript file, a ``torch.export`` program (``.pt2``), an
    avrobust weights file (``kind: sign-classifier``) or ``package.module:callable``."""
    if isinstance(spec, nn.Module):
        module = spec
    elif isinstance(spec, str) and ":" in spec and not Path(spec).exists():
        mod_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ModelError(f"cannot import {spec!r} ({exc})", field="model") from None
        module = factory()
        if not isinstance(module, nn.Module):
            raise ModelError(
                f"{spec} returned {type(module).__name__}, not an nn.Module", field="model"
            )
    else:
        path = Path(spec)
        if not path.is_file():
            raise ModelError("no such model file", file=path)
        module = _load_file(path)
        if classes is None and hasattr(module, "classes"):
            classes = tuple(module.classes)
    if classes is None:
        classes = tuple(getattr(module, "classes", ()) or ())
    if not classes:
        raise ModelError(
            "the classifier's class names are needed (pass classes=...)", field="classes"
        )
    module.eval()
    return ClassifierAdapter(module, tuple(classes), fmt or InputFormat())


def _load_file(path: Path) -> nn.Module:
    """A TorchScript archive, a ``torch.export`` program (``.pt2``) or avrobust weights."""
    import warnings
    import zipfile

    if path.suffix == ".pt2":
        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:
            raise ModelError(
                f"not a loadable torch.export program ({exc})".splitlines()[0], file=path
            ) from None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            scripted = any("/code/" in n for n in zf.namelist())
        if scripted:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # still supported, still used
                try:
                    return torch.jit.load(str(path), map_location="cpu")
                except Exception as exc:
                    raise ModelError(
                        f"not a loadable TorchScript file ({exc})".splitlines()[0], file=path
                    ) from None
    from avrobust.models.sign_classifier import SignClassifier
    from avrobust.models.weights import load_weights

    state, meta = load_weights(path, "sign-classifier")
    model = SignClassifier(tuple(meta["classes"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"weights do not fit the sign classifier ({exc})".splitlines()[0], file=path
        ) from None
    return model
