"""The victim held still while an attack optimises against it, and given back as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def frozen(*models: torch.nn.Module | None) -> Iterator[None]:
    """Put ``models`` in eval mode with no parameter gradients for the block (batch-norm
    statistics must not drift and no gradient should pile up in the weights), then restore each
    module's training flag and each parameter's ``requires_grad`` as the caller had them."""
    modules = [m for m in models if m is not None]
    training = [(sub, sub.training) for m in modules for sub in m.modules()]
    grads = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    try:
        for m in modules:
            m.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield
    finally:
        for sub, flag in training:
            sub.train(flag)
        for p, flag in grads:
            p.requires_grad_(flag)
