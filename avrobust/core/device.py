"""Picking the torch device: ``auto`` means CUDA when available, the CPU otherwise."""

from __future__ import annotations

import torch

from avrobust.core.errors import ConfigError


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a usable ``torch.device``."""
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(
            f"unknown device {spec!r}", field="device", allowed="auto, cpu, cuda, cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "CUDA was requested but torch sees no CUDA device", field="device", allowed="auto, cpu"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {spec!r}", field="device", allowed="auto, cpu, cuda")
    return device
