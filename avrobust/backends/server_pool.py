"""Leasing CARLA servers to jobs: one job per server at a time.

Each server is ``host:port`` (CARLA also uses ``port + 1`` for streaming, so ports must be at
least 3 apart) and gets its own Traffic Manager port (``port + 6000``: 2000 -> 8000). Leases are
exclusive file locks in a folder shared by the processes of one machine, so a local process pool
and the Ray workers of one node share one pool. On a Ray cluster, each node starts its own
servers, lists them as ``localhost:PORT``, and declares ``--resources='{"carla_server": N}'``
for its N servers; Ray then never runs more CARLA jobs on a node than it has servers, and the
lock files decide which server each job gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from avrobust.core.errors import BackendError, ConfigError

TM_PORT_OFFSET = 6000


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    @property
    def tm_port(self) -> int:
        """The Traffic Manager port this server's client uses."""
        return self.port + TM_PORT_OFFSET

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(specs: list[str]) -> list[Server]:
    """``["host:port", ...]`` to servers, checking the port spacing CARLA needs."""
    servers = []
    for i, spec in enumerate(specs):
        host, sep, port = spec.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"expected HOST:PORT, got {spec!r}", field=f"carla.servers[{i}]")
        servers.append(Server(host, int(port)))
    by_host: dict[str, list[int]] = {}
    for s in servers:
        by_host.setdefault(s.host, []).append(s.port)
    for host, ports in by_host.items():
        ports.sort()
        for a, b in itertools.pairwise(ports):
            if b - a < 3:
                raise ConfigError(
                    f"servers {host}:{a} and {host}:{b} are closer than 3 ports "
                    "(CARLA streams on port + 1)",
                    field="carla.servers",
                    allowed="ports at least 3 apart, e.g. 2000, 2003, 2006",
                )
    return servers


class ServerPool:
    """Exclusive leases on a list of servers, shared by every process of this machine."""

    def __init__(self, servers: list[str], lock_dir: str | Path | None = None) -> None:
        self.servers = parse_servers(servers)
        if not self.servers:
            raise ConfigError("no CARLA servers configured", field="carla.servers")
        base = lock_dir or os.environ.get("AVROBUST_LOCK_DIR") or tempfile.gettempdir()
        self.lock_dir = Path(base) / "avrobust-carla-leases"
        self.lock_dir.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lease(self, timeout: float = 600.0, poll: float = 0.2) -> Iterator[Server]:
        """Wait (at most ``timeout`` seconds) for a free server and hold it for the block."""
        deadline = time.monotonic() + timeout
        while True:
            for server in self.servers:
                path = self.lock_dir / f"{server.host}_{server.port}.lock"
                fh = open(path, "a+")
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.close()
                    continue
                try:
                    yield server
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
                    fh.close()
                return
            if time.monotonic() > deadline:
                raise BackendError(
                    f"no CARLA server became free within {timeout:g} s "
                    f"({len(self.servers)} configured)",
                    field="carla.servers",
                )
            time.sleep(poll)
