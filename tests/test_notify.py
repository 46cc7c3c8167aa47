"""Tests for the sd_notify client, against a real datagram socket."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from geoingest.notify import Notifier, watchdog_interval_s, watchdog_loop

from notify_listener import NotifyListener

MakeNotifier = Callable[[dict[str, str]], Notifier]

# WATCHDOG_USEC=200000 asks for a ping every 0.2 s; the notifier pings at half that.
WATCHDOG_ENV = {"WATCHDOG_USEC": "200000"}
PING_INTERVAL_S = 0.1


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Iterator[NotifyListener]:
    """A listener on a socket file or on an abstract name, bound for the test."""
    if request.param == "abstract":
        with NotifyListener.abstract() as bound:
            yield bound
        return
    # A socket path must fit in 107 bytes, which tmp_path can pass with long test names.
    with (
        tempfile.TemporaryDirectory(prefix="gi-") as folder,
        NotifyListener.at_path(Path(folder) / "notify") as bound,
    ):
        yield bound


@pytest.fixture
def make_notifier() -> Iterator[MakeNotifier]:
    """Builds notifiers from an environment and closes their sockets after the test."""
    made: list[Notifier] = []

    def make(environ: dict[str, str]) -> Notifier:
        made.append(Notifier.from_environment(environ))
        return made[-1]

    yield make
    for notifier in made:
        notifier.close()


def run_for(seconds: float, coroutine: Callable[[], Coroutine[object, object, None]]) -> None:
    """Runs a never-ending coroutine on a fresh event loop, then cancels it."""

    async def main() -> None:
        task = asyncio.create_task(coroutine())
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_ready_reaches_the_socket_from_this_process(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(listener.environ())

    assert notifier.ready() is True

    [message] = listener.wait_for("READY")
    assert message.fields == {"READY": "1"}
    assert message.sender_pid == os.getpid()


def test_status_sends_the_text_on_one_line(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(listener.environ())

    notifier.status("backfill: 120 files\nwatching 2 folders")

    [message] = listener.wait_for("STATUS")
    assert message.fields == {"STATUS": "backfill: 120 files watching 2 folders"}


def test_stopping_sends_stopping(listener: NotifyListener, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier(listener.environ())

    notifier.stopping()

    [message] = listener.wait_for("STOPPING")
    assert message.fields == {"STOPPING": "1"}


def test_reloading_carries_the_monotonic_clock_in_microseconds(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(listener.environ())

    before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    [message] = listener.wait_for("RELOADING")
    assert message.fields.keys() == {"RELOADING", "MONOTONIC_USEC"}
    assert message.fields["RELOADING"] == "1"
    assert before_us <= int(message.fields["MONOTONIC_USEC"]) <= after_us


def test_watchdog_sends_a_ping(listener: NotifyListener, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier(listener.environ())

    notifier.watchdog()

    [message] = listener.wait_for("WATCHDOG")
    assert message.fields == {"WATCHDOG": "1"}


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval_s(WATCHDOG_ENV) == PING_INTERVAL_S


def test_watchdog_interval_applies_when_watchdog_pid_is_this_process() -> None:
    env = {**WATCHDOG_ENV, "WATCHDOG_PID": str(os.getpid())}

    assert watchdog_interval_s(env) == PING_INTERVAL_S


def test_watchdog_interval_is_none_when_watchdog_pid_is_another_process() -> None:
    env = {**WATCHDOG_ENV, "WATCHDOG_PID": str(os.getppid())}

    assert watchdog_interval_s(env) is None


@pytest.mark.parametrize("usec", [None, "", "soon", "0", "-200000"])
def test_watchdog_interval_is_none_without_a_usable_watchdog_usec(usec: str | None) -> None:
    env = {} if usec is None else {"WATCHDOG_USEC": usec}

    assert watchdog_interval_s(env) is None


def test_watchdog_loop_pings_at_half_the_watchdog_period(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(listener.environ(**WATCHDOG_ENV))

    run_for(0.55, lambda: watchdog_loop(notifier, lambda: True))

    # Pings at 0, 0.1, ... 0.5 s; a slow machine may fit one fewer in the window.
    pings = listener.wait_for("WATCHDOG", count=5)
    gaps = [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(pings)]
    assert len(pings) in {5, 6}
    assert statistics.median(gaps) == pytest.approx(PING_INTERVAL_S, abs=0.02)
    assert min(gaps) > PING_INTERVAL_S * 0.7


def test_watchdog_loop_withholds_pings_while_unhealthy(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(listener.environ(**WATCHDOG_ENV))
    checks: list[float] = []

    def healthy() -> bool:
        # Unhealthy for the first two checks, healthy afterwards.
        checks.append(time.monotonic())
        return len(checks) > 2

    with capture_logs() as logs:
        run_for(0.45, lambda: watchdog_loop(notifier, healthy))

    pings = listener.wait_for("WATCHDOG", count=len(checks) - 2)
    assert len(checks) >= 4
    assert len(pings) == len(checks) - 2
    assert pings[0].received_at >= checks[2]
    assert [entry["event"] for entry in logs] == ["watchdog_withheld", "watchdog_resumed"]


def test_watchdog_loop_counts_a_raising_check_as_unhealthy(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(listener.environ(**WATCHDOG_ENV))

    def healthy() -> bool:
        raise RuntimeError("worker pool gone")

    with capture_logs() as logs:
        run_for(0.25, lambda: watchdog_loop(notifier, healthy))

    assert listener.with_key("WATCHDOG") == []
    assert logs[0]["event"] == "watchdog_check_raised"
    assert "watchdog_withheld" in [entry["event"] for entry in logs]


def test_watchdog_loop_returns_at_once_without_a_watchdog(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(listener.environ())

    asyncio.run(asyncio.wait_for(watchdog_loop(notifier, lambda: True), timeout=1.0))

    assert listener.messages == []


def test_nothing_is_sent_without_notify_socket(
    listener: NotifyListener, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(WATCHDOG_ENV)

    sent = [
        notifier.ready(),
        notifier.status("idle"),
        notifier.watchdog(),
        notifier.reloading(),
        notifier.stopping(),
    ]
    asyncio.run(asyncio.wait_for(watchdog_loop(notifier, lambda: True), timeout=1.0))

    assert notifier.enabled is False
    assert sent == [False] * 5
    time.sleep(0.1)
    assert listener.messages == []


def test_a_failed_send_is_logged_once_and_not_raised(
    tmp_path: Path, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")})

    with capture_logs() as logs:
        sent = [notifier.ready(), notifier.status("still here"), notifier.stopping()]

    assert sent == [False, False, False]
    assert len(logs) == 1
    assert logs[0]["event"] == "notify_failed"
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["address"] == str(tmp_path / "absent")
