"""The victim held still while an attack optimises against it, and given back as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# Modules an enclosing `frozen` block holds now (by id): a nested block over the same module is
# free, so an attack holds its victim once around its loop and the per-call holds inside cost a
# lookup rather than a walk over every module and parameter.
_HELD: set[int] = set()


@contextmanager
def frozen(*models: torch.nn.Module | None) -> Iterator[None]:
    """Put ``models`` in eval mode with no parameter gradients for the block (batch-norm
    statistics must not drift and no gradient should pile up in the weights), then restore each
    module's training flag and each parameter's ``requires_grad`` as the caller had them."""
    modules = list({id(m): m for m in models if m is not None and id(m) not in _HELD}.values())
    training = [(sub, sub.training) for m in modules for sub in m.modules()]
    grads = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    _HELD.update(id(m) for m in modules)
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
        _HELD.difference_update(id(m) for m in modules)
