"""Shipped and trained weights: one file with the state dict and its metadata, loaded with
``weights_only=True`` (no code runs from a weights file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avrobust.core.errors import ModelError
from avrobust.core.files import atomic_write
from avrobust.core.resources import data_path, resolve_user_path

FORMAT = "avrobust.weights"
ASSETS = data_path("assets", "models")


def save_weights(path: str | Path, model: nn.Module, kind: str, meta: dict[str, Any]) -> Path:
    payload = {
        "format": FORMAT,
        "kind": kind,
        "state_dict": model.state_dict(),
        "meta": json.dumps(meta),
    }
    with atomic_write(path) as fh:
        torch.save(payload, fh)
    return Path(path)


def read_payload(
    path: str | Path, fmt: str, what: str, max_bytes: int | None = None
) -> tuple[Path, dict]:
    """``(resolved path, payload)`` of an avrobust file saved with ``torch.save`` whose
    ``format`` is ``fmt``, read with ``weights_only=True`` (no code runs from it), after a size
    check when ``max_bytes`` is given; a :class:`ModelError` naming the ``what`` file
    otherwise."""
    path = resolve_user_path(path)
    if not path.is_file():
        raise ModelError(f"no such {what} file", file=path)
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise ModelError(
            f"the file is {path.stat().st_size} bytes; a {what} file holds at most {max_bytes}",
            file=path,
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"not a readable {what} file ({type(exc).__name__})", file=path) from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise ModelError(f"not an avrobust {what} file", file=path, field="format")
    return path, payload


def load_weights(path: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a weights file of ``kind``; :class:`ModelError` otherwise."""
    path, payload = read_payload(path, FORMAT, "weights")
    if payload.get("kind") != kind:
        raise ModelError(
            f"holds a {payload.get('kind')!r} model, not {kind!r}", file=path, field="kind"
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(
            "the state dict is not a mapping of names to tensors", file=path, field="state_dict"
        )
    try:
        meta = json.loads(payload.get("meta"))
    except (TypeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise ModelError("the metadata is not a JSON object", file=path, field="meta")
    return state, _Meta(meta, path=path)


class _Meta(dict):
    """A weights file's metadata: a key the loader needs and the file lacks is a ModelError
    naming the file and the field, not a KeyError."""

    def __init__(self, data: dict, path: Path) -> None:
        super().__init__(data)
        self.path = path

    def __missing__(self, key: str):
        raise ModelError("the metadata lacks a field", file=self.path, field=f"meta.{key}")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_identity(path: str | Path) -> tuple[str, str]:
    """``(name, sha256)`` of a weights file as records name it: a shipped file by its file
    name, any other by the path as given."""
    p = resolve_user_path(path).resolve()
    return (p.name if p.parent == ASSETS else str(path)), file_sha256(p)


def base_record(role: str, path: str | Path) -> dict[str, str]:
    """How a derived model's weights file names the ``role`` weights it was trained with."""
    name, sha = weights_identity(path)
    return {f"{role}_file": name, f"{role}_sha256": sha}
