"""Where the files that ship with avrobust are: weights and model cards (``assets/models``),
printer palettes, patches and objects (``assets/``), and the scenario library
(``scenarios/``). They live inside the package (``avrobust/assets``, ``avrobust/scenarios``;
the repository's top-level ``assets`` and ``scenarios`` are links to them), so a wheel or a
``pip install .`` carries them and they are found from any working directory.

``AVROBUST_DATA`` names another folder holding ``assets/`` and ``scenarios/`` (a site copy,
say); ``AVROBUST_SCENARIOS`` another scenario library alone.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: The top-level folders of shipped data that user paths may start with.
SHIPPED_ROOTS = ("assets", "scenarios")


def data_root() -> Path:
    """The folder holding ``assets/`` and ``scenarios/``: ``$AVROBUST_DATA`` or the package's
    own (a regular, unzipped install: the package's files are files)."""
    env = os.environ.get("AVROBUST_DATA")
    if env:
        return Path(env).resolve()  # resolved, as shipped paths are compared with real ones
    return Path(str(resources.files("avrobust"))).resolve()


def data_path(*parts: str) -> Path:
    """A shipped file or folder, e.g. ``data_path("assets", "models")``."""
    return data_root().joinpath(*parts)


def resolve_user_path(path: str | Path) -> Path:
    """A path a user gave (in a campaign file or on the command line): as given when it exists
    or is absolute; a relative path that does not exist here but starts with ``assets/`` or
    ``scenarios/`` and names a shipped file resolves to that file. So the library's campaign
    files, which name ``assets/patches/...``, run from any working directory."""
    p = Path(path)
    if p.is_absolute() or p.exists() or not p.parts or p.parts[0] not in SHIPPED_ROOTS:
        return p
    shipped = data_path(*p.parts)
    return shipped if shipped.exists() else p
