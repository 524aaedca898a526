"""Errors that avrobust reports to users.

Every error caused by bad input is an :class:`AvrobustError` whose message names the file, the
field and what is allowed, so the CLI can print it as one line (exit status 2) with no traceback.
"""

from __future__ import annotations

from pathlib import Path


class AvrobustError(Exception):
    """Base class of the errors avrobust reports to users.

    Args:
        message: what is wrong, in one sentence.
        file: the file the problem is in, when there is one.
        field: the field (dotted path) inside that file or call, when there is one.
        allowed: what would have been accepted.
        line: 1-based line number in ``file``, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        allowed: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.field = field
        self.allowed = allowed
        self.line = line
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "")
        if self.field is not None:
            where = f"{where}: {self.field}" if where else self.field
        text = f"{where}: {self.message}" if where else self.message
        if self.allowed is not None:
            text += f" (allowed: {self.allowed})"
        return text


class ConfigError(AvrobustError):
    """A configuration value or file (scenario, campaign, CLI option) is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (a preset, a class) that is not among the allowed ones. Also a ``KeyError``, as a
    lookup by name is; the CLI prints it as one line like any :class:`ConfigError`."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.format()


class DataError(AvrobustError):
    """A data file (dataset, point cloud, image, results store, patch) is missing or malformed."""


class ModelError(AvrobustError):
    """A model or its weights cannot be loaded or does not fit the adapter's contract."""


class BackendError(AvrobustError):
    """A simulation backend failed (for example a CARLA server that does not answer)."""


class DependencyError(AvrobustError):
    """An optional dependency needed for the requested feature is not installed."""


class AttackError(AvrobustError):
    """An attack broke its stated threat model (budget, angular window, range)."""
