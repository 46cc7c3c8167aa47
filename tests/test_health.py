"""The metrics and health endpoint, the readiness state, the heartbeat and the loop monitor."""

from __future__ import annotations

import asyncio
import http.client
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.registry import Collector
from structlog.testing import capture_logs

from geoingest.health import HealthServer, Heartbeat, Readiness, monitor_event_loop
from geoingest.metrics import Metrics, process_registry

SCRAPE_DEADLINE_S = 0.1
OPENMETRICS = "application/openmetrics-text; version=1.0.0"

# A stand-in for Prometheus: scrapes /metrics in a loop and prints how long each took.
SCRAPER = """
import http.client, sys, time
port, until = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < until:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/metrics")
    assert connection.getresponse().read()
    connection.close()
    print(time.perf_counter() - started, flush=True)
    time.sleep(0.02)
"""


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, read in full."""

    status: int
    headers: dict[str, str]
    body: bytes


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(
    server: HealthServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Reply:
    """Send one request to the server and read the whole answer."""
    host, port = server.address
    with closing(http.client.HTTPConnection(host, port, timeout=5)) as connection:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())


@contextmanager
def serving(
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
    heartbeat: Heartbeat | None = None,
) -> Iterator[HealthServer]:
    """Run a server on a free port of 127.0.0.1 for the length of the block."""
    if registry is None:
        registry = CollectorRegistry()
        Metrics(registry, sources=["drop"])
    server = HealthServer(
        registry, readiness or Readiness(), heartbeat or Heartbeat(), "127.0.0.1", 0
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def promtool() -> str:
    """Return the path of promtool, failing the test when it is not installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install it with `apt-get install -y prometheus`")
    return path


def test_metrics_are_served_in_the_text_format_without_created_series() -> None:
    with serving() as server:
        reply = request(server, "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'geoingest_files_processed_total{outcome="ingested",source="drop"} 0.0\n' in reply.body
    assert b"_created" not in reply.body


def test_metrics_are_served_as_openmetrics_when_the_scraper_asks() -> None:
    with serving() as server:
        reply = request(server, "/metrics", headers={"Accept": OPENMETRICS})
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    assert reply.body.endswith(b"# EOF\n")


def test_head_sends_the_headers_of_a_get_without_a_body() -> None:
    with serving() as server:
        get, head = request(server, "/metrics"), request(server, "/metrics", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["Content-Length"] == str(len(get.body))


@pytest.mark.parametrize("path", ["/", "/metrics/", "/metricsz", "/favicon.ico", "/../etc"])
def test_paths_other_than_the_three_endpoints_are_not_found(path: str) -> None:
    with serving() as server:
        reply = request(server, path)
    assert reply.status == 404
    assert reply.body == b"not found: try /metrics, /healthz or /readyz\n"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_other_than_get_and_head_are_refused(method: str) -> None:
    with serving() as server:
        reply = request(server, "/metrics", method=method)
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD"


class BrokenCollector(Collector):
    """A collector that fails, as a buggy custom one would."""

    def collect(self) -> Iterable[Metric]:
        raise RuntimeError("cannot read /proc")


def test_a_failing_collector_gives_500_and_an_error_log() -> None:
    registry = CollectorRegistry()
    registry.register(BrokenCollector())
    with serving(registry=registry) as server, capture_logs() as logs:
        reply = request(server, "/metrics")
    assert (reply.status, reply.body) == (500, b"internal error; see the log\n")
    failures = [log for log in logs if log["event"] == "metrics_request_failed"]
    assert [(log["log_level"], log["path"], log["exc_info"]) for log in failures] == [
        ("error", "/metrics", True)
    ]


def test_a_query_string_does_not_change_the_route() -> None:
    with serving() as server:
        reply = request(server, "/healthz?verbose=1")
    assert (reply.status, reply.body) == (200, b"ok\n")


def test_readyz_reports_the_reason_until_the_daemon_is_ready() -> None:
    readiness = Readiness()
    with serving(readiness=readiness) as server:
        starting = request(server, "/readyz")
        readiness.set_ready()
        ready = request(server, "/readyz")
        readiness.set_not_ready("/srv/out is not writable: Read-only file system")
        broken = request(server, "/readyz")
    assert (starting.status, starting.body) == (503, b"not ready: starting\n")
    assert (ready.status, ready.body) == (200, b"ready\n")
    assert broken.status == 503
    assert broken.body == b"not ready: /srv/out is not writable: Read-only file system\n"


def test_healthz_turns_unavailable_once_the_heartbeat_is_stale() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(stale_after_s=5.0, clock=clock)
    with serving(heartbeat=heartbeat) as server:
        clock.now += 5.0
        fresh = request(server, "/healthz")
        clock.now += 1.5
        stale = request(server, "/healthz")
    assert (fresh.status, fresh.body) == (200, b"ok\n")
    assert (stale.status, stale.body) == (503, b"event loop silent for 6.5 s\n")


def test_health_answers_are_plain_text_and_never_cached() -> None:
    with serving() as server:
        reply = request(server, "/healthz")
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.headers["Cache-Control"] == "no-store"


def test_port_zero_binds_a_free_port_and_reports_it() -> None:
    with serving() as server:
        host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0


def test_a_port_in_use_raises_in_the_caller() -> None:
    with serving() as first:
        second = HealthServer(CollectorRegistry(), Readiness(), Heartbeat(), *first.address)
        with pytest.raises(OSError):
            second.start()


def test_stop_frees_the_port_and_may_be_called_twice() -> None:
    with serving() as server:
        port = server.address[1]
        server.stop()
        server.stop()
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", port))


def test_address_is_unknown_before_start() -> None:
    server = HealthServer(CollectorRegistry(), Readiness(), Heartbeat(), "127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.address


def test_readiness_folds_a_reason_onto_one_line_and_logs_each_change_once() -> None:
    readiness = Readiness()
    with capture_logs() as logs:
        readiness.set_not_ready("state folder\nis gone")
        readiness.set_not_ready("state folder is gone")
        readiness.set_ready()
        readiness.set_ready()
    assert readiness.reason is None
    assert logs == [
        {
            "event": "readiness_changed",
            "log_level": "info",
            "ready": False,
            "reason": "state folder is gone",
        },
        {"event": "readiness_changed", "log_level": "info", "ready": True, "reason": None},
    ]


def test_heartbeat_is_fresh_until_stale_after_s_has_passed() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(stale_after_s=2.0, clock=clock)
    clock.now += 2.0
    at_limit = heartbeat.is_fresh()
    clock.now += 0.1
    assert (at_limit, heartbeat.is_fresh()) == (True, False)
    assert heartbeat.age_s() == pytest.approx(2.1)


def test_monitor_observes_how_late_each_tick_ran() -> None:
    metrics = Metrics(CollectorRegistry(), sources=[])
    heartbeat = Heartbeat(stale_after_s=0.1)

    async def block_once() -> None:
        task = asyncio.create_task(monitor_event_loop(metrics, heartbeat, interval_s=0.02))
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251 (blocking the loop is what is measured)
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(block_once())
    lag_sum = metrics.registry.get_sample_value("geoingest_event_loop_lag_seconds_sum")
    slow_ticks = metrics.registry.get_sample_value(
        "geoingest_event_loop_lag_seconds_bucket", {"le": "0.1"}
    )
    count = metrics.registry.get_sample_value("geoingest_event_loop_lag_seconds_count")
    assert lag_sum is not None and 0.25 < lag_sum < 0.6
    assert count is not None and slow_ticks == count - 1
    assert heartbeat.is_fresh()


def scrape_until(server: HealthServer, stop: threading.Event) -> list[tuple[float, int]]:
    """Scrape /metrics and /healthz in turn until told to stop.

    Returns:
        For each round, the seconds /metrics took and the status of /healthz.
    """
    rounds: list[tuple[float, int]] = []
    while not stop.is_set():
        started = time.perf_counter()
        metrics_status = request(server, "/metrics").status
        took_s = time.perf_counter() - started
        assert metrics_status == 200
        rounds.append((took_s, request(server, "/healthz").status))
        time.sleep(0.02)
    return rounds


@dataclass(frozen=True)
class Stall:
    """What the scraping thread saw while the loop was held, and /healthz afterwards."""

    rounds: list[tuple[float, int]]
    health_after: int


async def sleep_in_the_loop(server: HealthServer, heartbeat: Heartbeat) -> Stall:
    """Run the monitor, block the loop for a second while a thread scrapes, then let go."""
    metrics = Metrics(CollectorRegistry(), sources=[])
    monitor = asyncio.create_task(monitor_event_loop(metrics, heartbeat, interval_s=0.05))
    await asyncio.sleep(0.1)
    stop = threading.Event()
    rounds: list[tuple[float, int]] = []
    scraper = threading.Thread(target=lambda: rounds.extend(scrape_until(server, stop)))
    scraper.start()

    time.sleep(1.0)  # noqa: ASYNC251 (the stall under test)

    # Let go, give the monitor a few ticks, then ask again.
    stop.set()
    await asyncio.to_thread(scraper.join)
    await asyncio.sleep(0.2)
    health_after = (await asyncio.to_thread(request, server, "/healthz")).status
    monitor.cancel()
    return Stall(rounds, health_after)


def test_endpoint_answers_within_100ms_while_the_loop_is_blocked() -> None:
    heartbeat = Heartbeat(stale_after_s=0.3)
    with serving(heartbeat=heartbeat) as server:
        request(server, "/metrics")
        stall = asyncio.run(sleep_in_the_loop(server, heartbeat))
    slowest_s = max(took_s for took_s, _ in stall.rounds)
    health = [status for _, status in stall.rounds]
    assert len(stall.rounds) >= 10
    assert slowest_s < SCRAPE_DEADLINE_S, f"/metrics took {slowest_s * 1000:.0f} ms"
    assert health[0] == 200
    assert 503 in health
    assert stall.health_after == 200


async def spin_in_the_loop(port: int, seconds: float) -> list[float]:
    """Keep the loop busy in Python while a scraper process times /metrics; return its times."""
    scraper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRAPER, str(port), str(seconds), stdout=asyncio.subprocess.PIPE
    )
    assert scraper.stdout is not None
    first = await scraper.stdout.readline()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    rest, _ = await scraper.communicate()
    return [float(line) for line in (first + rest).split()]


def test_endpoint_answers_within_100ms_while_the_loop_holds_the_gil() -> None:
    # Prometheus scrapes from another process, and so does this test: a scraping thread
    # in this process would wait for the GIL too and time its own waits.
    with serving() as server:
        timings = asyncio.run(spin_in_the_loop(server.address[1], seconds=0.8))
    assert len(timings) >= 5
    assert max(timings) < SCRAPE_DEADLINE_S, f"/metrics took {max(timings) * 1000:.0f} ms"


def test_a_real_scrape_passes_promtool_check_metrics() -> None:
    registry = process_registry()
    Metrics(registry, sources=["drop", "upload"], rules=["feature-too-large"])
    with serving(registry=registry) as server:
        body = request(server, "/metrics").body
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
