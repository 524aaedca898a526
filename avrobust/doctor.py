"""Environment diagnosis: library versions, the torch device, CARLA client and server."""

from __future__ import annotations

import importlib
import platform
import threading
from dataclasses import dataclass

from avrobust.core.errors import ConfigError

CORE_LIBRARIES = (
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("kornia", "kornia"),
    ("open3d", "open3d"),
    ("opencv", "cv2"),
    ("numpy", "numpy"),
    ("pydantic", "pydantic"),
    ("torchmetrics", "torchmetrics"),
    ("reportlab", "reportlab"),
    ("jinja2", "jinja2"),
    ("matplotlib", "matplotlib"),
    ("typer", "typer"),
    ("rich", "rich"),
)
OPTIONAL_LIBRARIES = (("carla", "carla"), ("ray", "ray"))


@dataclass
class Check:
    """One line of the diagnosis."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(module_name: str) -> tuple[bool, str]:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail with OSError (missing .so) as well
        return False, f"not importable: {type(exc).__name__}: {exc}".splitlines()[0]
    version = getattr(module, "__version__", None)
    if version is None and module_name == "carla":
        from importlib.metadata import version as dist_version

        version = dist_version("carla")
    return True, str(version)


def parse_host_port(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` to ``(host, port)``; raises :class:`ConfigError` on bad input."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"expected HOST:PORT, got {text!r}", field="--carla", allowed="e.g. localhost:2000"
        )
    return host, int(port)


def probe_carla(host: str, port: int, timeout: float = 2.0) -> Check:
    """Ask a CARLA server for its version; never blocks for much longer than ``timeout``."""
    try:
        import carla
    except Exception as exc:
        return Check("carla server", False, f"carla client not importable ({exc})")
    result: dict[str, str] = {}

    def ask() -> None:
        try:
            client = carla.Client(host, port)
            client.set_timeout(timeout)
            result["server"] = client.get_server_version()
            result["client"] = client.get_client_version()
        except Exception as exc:  # carla raises RuntimeError on time-out
            result["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    # The client call honours its own time-out; the thread is a second guard against a hang.
    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout + 3.0)
    if worker.is_alive() or "error" in result:
        why = result.get("error", "no answer")
        return Check(
            "carla server",
            False,
            f"no CARLA server answered at {host}:{port} within {timeout:g} s ({why}); "
            "start one (see docs/carla.md) or check the host and port",
        )
    detail = f"{host}:{port} answers, server {result['server']}, client {result['client']}"
    if result["server"] != result["client"]:
        detail += " (versions differ: use matching client and server)"
    return Check("carla server", True, detail)


def shipped_data() -> Check:
    """Whether the files that ship with avrobust are where the library looks for them."""
    from avrobust.core.resources import data_path, data_root
    from avrobust.scenario.loader import library_dir

    library = library_dir()
    models = sorted(data_path("assets", "models").glob("*.pt"))
    palettes = sorted(data_path("assets", "palettes").glob("*.csv"))
    patches = sorted(data_path("assets", "patches").glob("*.patch"))
    scenarios = sorted(library.glob("*.yaml"))
    campaigns = sorted((library / "campaigns").glob("*.yaml"))
    ok = bool(models and palettes and scenarios)
    detail = (
        f"{data_root()}: {len(models)} model weights, {len(palettes)} palettes, "
        f"{len(patches)} patches; {len(scenarios)} scenarios and {len(campaigns)} campaigns in "
        f"{library}"
    )
    if not ok:
        detail += " (missing: reinstall avrobust, or set AVROBUST_DATA to a folder with assets/)"
    return Check("shipped data", ok, detail)


def diagnose(carla_address: str | None = None, carla_timeout: float = 2.0) -> list[Check]:
    """All checks ``avrobust doctor`` prints."""
    checks = [Check("python", True, platform.python_version())]
    for label, module in CORE_LIBRARIES:
        ok, detail = _version(module)
        checks.append(Check(label, ok, detail))
    for label, module in OPTIONAL_LIBRARIES:
        ok, detail = _version(module)
        checks.append(Check(label, ok, detail, required=False))
    try:
        import torch

        from avrobust.core.device import resolve_device

        device = resolve_device("auto")
        detail = str(device)
        if device.type == "cuda":
            detail += f" ({torch.cuda.get_device_name(device)})"
        else:
            detail += f" ({torch.get_num_threads()} threads; CUDA not available)"
        checks.append(Check("device auto", True, detail))
    except Exception as exc:
        checks.append(Check("device auto", False, str(exc)))
    checks.append(shipped_data())
    if carla_address is not None:
        host, port = parse_host_port(carla_address)
        checks.append(probe_carla(host, port, carla_timeout))
    return checks
