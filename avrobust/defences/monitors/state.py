"""A calibrated monitor in one file: what a fitted monitor learnt (class means, precisions,
scales, a feature bank), the threshold it was calibrated to and the classifier it watches, so a
campaign can deploy Mahalanobis or the union without the crops it was fitted on.

The file is a ``torch.save`` of plain tensors, numbers and strings, read with
``weights_only=True`` (no code runs from it) after a size check; every field is checked, and a
bad one is a :class:`ModelError` naming the file and the field. The classifier's SHA-256 is
kept: a monitor fitted on one classifier's features means nothing on another's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avrobust.core.errors import ModelError
from avrobust.core.files import atomic_write
from avrobust.defences.monitors.classifier import (
    Knn,
    Mahalanobis,
    Union,
    _ClassifierMonitor,
    monitor_named,
)
from avrobust.defences.monitors.strip import Strip

FORMAT = "avrobust.monitor"
MAX_BYTES = 64 * 2**20  # the union's state is a few hundred kB; a KNN bank a few MB


def state_of(monitor: _ClassifierMonitor, prefix: str = "") -> dict[str, torch.Tensor]:
    """What ``monitor`` learnt from its fit set, as named tensors."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(monitor, Mahalanobis):
        for k, (mu, p) in enumerate(zip(monitor.mu, monitor.precision, strict=True)):
            out[f"{prefix}mu.{k}"], out[f"{prefix}precision.{k}"] = mu, p
        out[f"{prefix}alpha"] = torch.tensor(monitor.alpha, dtype=torch.float64)
    elif isinstance(monitor, Knn) and monitor.bank is not None:
        out[f"{prefix}bank"] = monitor.bank
        out[f"{prefix}k"] = torch.tensor(monitor.k)
    elif isinstance(monitor, Strip) and monitor.pool is not None:
        out[f"{prefix}pool"] = monitor.pool
    elif isinstance(monitor, Union):
        out[f"{prefix}centre"] = torch.tensor(monitor.centre, dtype=torch.float64)
        out[f"{prefix}spread"] = torch.tensor(monitor.spread, dtype=torch.float64)
        for i, m in enumerate(monitor.members):
            out.update(state_of(m, f"{prefix}member.{i}."))
    return out


def _restore(monitor: _ClassifierMonitor, state: dict, path: Path, prefix: str = "") -> None:
    def get(key: str) -> torch.Tensor:
        v = state.get(prefix + key)
        if not isinstance(v, torch.Tensor):
            raise ModelError("missing or not a tensor", file=path, field=f"state.{prefix}{key}")
        return v

    if isinstance(monitor, Mahalanobis):
        n = len(monitor.layers)
        monitor.mu = [get(f"mu.{k}").float() for k in range(n)]
        monitor.precision = [get(f"precision.{k}").float() for k in range(n)]
        monitor.alpha = [float(a) for a in get("alpha").reshape(-1)]
        if len(monitor.alpha) != n:
            raise ModelError(f"needs {n} layer scales", file=path, field=f"state.{prefix}alpha")
    elif isinstance(monitor, Knn):
        from pytorch_ood.detector import KNN

        bank, k = get("bank").float(), get("k").reshape(-1)
        monitor.k = int(k[0]) if k.numel() else 0
        if bank.dim() != 2 or not 1 <= monitor.k <= len(bank):
            raise ModelError(
                f"needs at least k = {monitor.k} feature rows",
                file=path,
                field=f"state.{prefix}bank",
            )
        monitor.bank = bank
        monitor.detector = KNN(None, k=monitor.k).fit_features(bank, torch.zeros(len(bank)))
    elif isinstance(monitor, Strip):
        pool = get("pool").float()
        if pool.dim() != 4 or pool.shape[1] != 3 or not 1 <= len(pool) <= 256:
            raise ModelError(
                "needs 1 to 256 blend crops [K, 3, H, W]", file=path, field=f"state.{prefix}pool"
            )
        monitor.pool = pool.clamp(0, 1)
    elif isinstance(monitor, Union):
        monitor.centre = [float(v) for v in get("centre").reshape(-1)]
        monitor.spread = [float(v) for v in get("spread").reshape(-1)]
        if {len(monitor.centre), len(monitor.spread)} != {len(monitor.members)}:
            raise ModelError("one scale per member", file=path, field=f"state.{prefix}centre")
        for i, m in enumerate(monitor.members):
            _restore(m, state, path, f"{prefix}member.{i}.")


def save_monitor(
    path: str | Path,
    monitor: _ClassifierMonitor,
    threshold: float,
    classifier_sha256: str,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``monitor`` (fitted), its calibrated ``threshold`` and provenance to ``path``."""
    payload = {
        "format": FORMAT,
        "name": monitor.name,
        "threshold": float(threshold),
        "classifier_sha256": classifier_sha256,
        "state": state_of(monitor),
        "meta": json.dumps(meta or {}),
    }
    with atomic_write(path) as fh:
        torch.save(payload, fh)
    return Path(path)


def load_monitor(
    path: str | Path, classifier: nn.Module, classifier_sha256: str | None = None
) -> tuple[_ClassifierMonitor, float, dict]:
    """``(monitor, threshold, meta)`` from a monitor file, on ``classifier`` (whose weights'
    SHA-256, when given, must be the one the monitor was fitted on)."""
    from avrobust.models.weights import read_payload

    path, payload = read_payload(path, FORMAT, "monitor", MAX_BYTES)
    name, threshold = payload.get("name"), payload.get("threshold")
    if not isinstance(name, str):
        raise ModelError("the monitor's name is missing", file=path, field="name")
    if not isinstance(threshold, float) or threshold != threshold:
        raise ModelError("the threshold is not a number", file=path, field="threshold")
    fitted_on = payload.get("classifier_sha256")
    if classifier_sha256 is not None and fitted_on != classifier_sha256:
        raise ModelError(
            f"fitted on classifier {str(fitted_on)[:12]}, not {classifier_sha256[:12]}",
            file=path,
            field="classifier_sha256",
        )
    state = payload.get("state")
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelError("the state is not a mapping of names", file=path, field="state")
    try:
        monitor = monitor_named(classifier, name, field="name")
    except Exception as exc:
        raise ModelError(str(exc), file=path, field="name") from None
    _restore(monitor, state, path)
    try:  # shapes that do not fit the classifier's features fail here, not mid-campaign
        monitor.score(torch.zeros(1, 3, 64, 64))
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ModelError(
            f"does not fit the classifier's features ({str(exc)[:80]})", file=path, field="state"
        ) from None
    try:
        meta = json.loads(payload.get("meta") or "{}")
    except (TypeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise ModelError("the metadata is not a JSON object", file=path, field="meta")
    return monitor, threshold, meta
