"""Seeds derived from stable ids, and explicit generators (no global random state)."""

from __future__ import annotations

import hashlib

import torch


def seed_from_id(identifier: str, salt: str = "") -> int:
    """A 63-bit seed from a stable id (a job id, a scenario name), the same on every machine."""
    digest = hashlib.sha256(f"{salt}:{identifier}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
