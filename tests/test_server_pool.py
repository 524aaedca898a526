import threading
import time

import pytest

from avrobust.backends.server_pool import ServerPool, parse_servers
from avrobust.core.errors import BackendError, ConfigError


def test_ports_must_be_spaced_and_well_formed():
    assert [s.tm_port for s in parse_servers(["a:2000", "a:2003", "b:2000"])] == [8000, 8003, 8000]
    with pytest.raises(ConfigError, match="closer than 3 ports"):
        parse_servers(["localhost:2000", "localhost:2002"])
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_servers(["localhost"])


def test_each_server_is_leased_to_one_holder_at_a_time(tmp_path):
    pool = ServerPool(["localhost:2000", "localhost:2003"], lock_dir=tmp_path)
    held, events = [], []

    def job(i: int) -> None:
        with pool.lease(timeout=10, poll=0.01) as server:
            held.append(server)
            events.append(("start", i, str(server), time.monotonic()))
            time.sleep(0.3)
            held.remove(server)
            events.append(("end", i, str(server), time.monotonic()))

    threads = [threading.Thread(target=job, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Never the same server twice at once, and never more than two in use.
    active: dict[str, int] = {}
    peak = 0
    for kind, _, server, _ in sorted(events, key=lambda e: e[3]):
        active[server] = active.get(server, 0) + (1 if kind == "start" else -1)
        assert active[server] <= 1
        peak = max(peak, sum(active.values()))
    assert peak == 2 and len(events) == 6


def test_lease_times_out_with_a_clear_error(tmp_path):
    pool = ServerPool(["localhost:2000"], lock_dir=tmp_path)
    with pool.lease(), pytest.raises(BackendError, match="no CARLA server became free"):
        with pool.lease(timeout=0.2, poll=0.05):
            pass
