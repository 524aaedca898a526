"""The per-epoch training checkpoint every ``avrobust train`` command writes and resumes from:
model, optimiser, scheduler, the sampling generator, torch's RNG, the epoch and the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from avrobust.core.errors import ConfigError, DataError
from avrobust.core.files import atomic_write


def save_checkpoint(
    path: Path, model, opt, sched, gen: torch.Generator, epoch: int, history: list, config=None
) -> None:
    state: dict[str, Any] = {} if config is None else {"config": config}
    state.update(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict(),
        generator=gen.get_state(),
        torch_rng=torch.get_rng_state(),
        epoch=epoch,
        history=history,
    )
    with atomic_write(path) as fh:
        torch.save(state, fh)


def resume_checkpoint(
    path: Path, model, opt, sched, gen: torch.Generator, device, config=None
) -> tuple[int, list]:
    """Restore everything from ``path`` when it exists; returns ``(epoch, history)``
    (``(0, [])`` for a fresh run). With ``config``, a checkpoint written with other settings
    is refused."""
    if not path.exists():
        return 0, []
    try:  # weights_only: a checkpoint someone hands over cannot run code when it is read
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise DataError(
            f"not a readable training checkpoint ({type(exc).__name__})", file=path
        ) from None
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch"} <= set(state):
        raise DataError("not an avrobust training checkpoint", file=path)
    if config is not None and state.get("config") != config:
        raise ConfigError(
            "the checkpoint was written with other settings; use another --out or the same "
            "settings",
            file=path,
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return state["epoch"], state["history"]


def one_cycle(opt, lr: float, total: int, pct_start: float):
    """torch's one-cycle schedule over ``total`` steps. Its warm-up ends at step
    ``pct_start * total - 1``; where that is exactly 0 (10 steps at 0.1) torch divides by
    zero on the first step, so the warm-up is nudged past it."""
    if float(pct_start * total) - 1 == 0:
        pct_start *= 1.01
    return torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=total, pct_start=pct_start)
