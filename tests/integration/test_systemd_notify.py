"""What systemd hears from the real daemon over ``NOTIFY_SOCKET``, and reloads on SIGHUP.

A :class:`NotifyListener` plays systemd's part: it binds the datagram socket
whose address the daemon finds in ``NOTIFY_SOCKET`` and keeps every message
with the time it arrived and the process that sent it.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from corpus import Folders, assert_exactly_once, collection, output_features, write
from daemon_process import Daemon
from notify_listener import Message, NotifyListener

Start = Callable[..., Daemon]

WATCHDOG_USEC = 400_000
# The daemon pings at half of WATCHDOG_USEC; a late tick on a busy machine may stretch one.
PING_INTERVAL_S = WATCHDOG_USEC / 2 / 1e6
PING_TOLERANCE_S = 0.05


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    """systemd's notification socket, in the abstract namespace.

    ``WATCHDOG_PID`` is removed from the environment the daemon inherits: the
    daemon's pid is only known once it runs, and a stray value would switch
    the watchdog off.
    """
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with NotifyListener.abstract() as listening:
        yield listening


def _status(url: str, path: str) -> int:
    try:
        with urllib.request.urlopen(url.replace("/metrics", path), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _wall_clock(message: Message) -> float:
    """When a message arrived, on the wall clock that the daemon's log timestamps use.

    Call it soon after the message arrives: the two clocks drift apart while
    the wall clock is being slewed.
    """
    return message.received_at + time.time() - time.monotonic()


def _logged_at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def _keys(messages: list[Message]) -> list[str]:
    """The lifecycle keys in the order they arrived, pings and status lines left out."""
    lifecycle = ("READY", "RELOADING", "STOPPING")
    return [key for m in messages for key in m.fields if key in lifecycle]


def _wait_for_status(listener: NotifyListener, text: str, timeout_s: float = 15.0) -> str:
    """Wait until the latest STATUS= line holds ``text``, and return that line."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = [m.fields["STATUS"] for m in listener.with_key("STATUS")]
        if lines and text in lines[-1]:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no STATUS with {text!r}; the last ones: {lines[-3:]}")


def test_ready_comes_once_the_daemon_watches(
    folders: Folders, start_daemon: Start, listener: NotifyListener
) -> None:
    daemon = start_daemon(env=listener.environ())
    ready = listener.wait_for("READY", timeout_s=30)[0]
    ready_at = _wall_clock(ready)

    # When systemd hears READY=1, the watcher is armed and /readyz already says so.
    assert _status(daemon.metrics_url, "/readyz") == 200
    watching = daemon.wait_for_event("watching")
    assert _logged_at(daemon.find("watcher_armed")[0]) <= ready_at
    assert _logged_at(watching) <= ready_at
    assert daemon.stop() == 0


def test_systemd_hears_status_watchdog_reload_and_stop(
    folders: Folders, start_daemon: Start, listener: NotifyListener
) -> None:
    rng = random.Random(81)
    for i in range(5):
        write(folders.drop / f"f{i}.geojson", collection(rng, 2))
    (folders.drop / "broken.geojson").write_text("{")
    daemon = start_daemon(env=listener.environ(WATCHDOG_USEC=str(WATCHDOG_USEC)))
    listener.wait_for("READY", timeout_s=30)

    # STATUS= carries a live summary of the work done.
    _wait_for_status(listener, "ingested 5 files, quarantined 1")

    # WATCHDOG=1 every half WATCHDOG_USEC, from the event loop of the main process.
    pings = listener.wait_for("WATCHDOG", count=len(listener.with_key("WATCHDOG")) + 12)
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(pings[-12:])]
    assert abs(statistics.median(gaps) - PING_INTERVAL_S) < PING_TOLERANCE_S, gaps
    assert all(p.fields["WATCHDOG"] == "1" for p in pings)

    # SIGHUP: RELOADING=1 stamped with the monotonic clock, then READY=1 again.
    daemon.proc.send_signal(signal.SIGHUP)
    reloading = listener.wait_for("RELOADING")[0]
    listener.wait_for("READY", count=2)
    sent_us = int(reloading.fields["MONOTONIC_USEC"])
    assert 0 <= reloading.received_at * 1e6 - sent_us < 1e6
    assert reloading.fields["RELOADING"] == "1"
    daemon.wait_for_event("reloaded")

    # SIGTERM: STOPPING=1, and a clean exit.
    assert daemon.stop() == 0
    assert _keys(listener.messages) == ["READY", "RELOADING", "READY", "STOPPING"]
    assert {m.sender_pid for m in listener.messages} == {daemon.proc.pid}


def _toml(value: object) -> str:
    # JSON strings, numbers and arrays of strings are valid TOML too.
    return json.dumps(value)


def write_config(path: Path, settings: dict[str, object]) -> None:
    """Write a TOML configuration file, replacing the whole file at once."""
    text = "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items())
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    temporary.replace(path)


class Dropper:
    """Drops a three-feature file into each of its folders every 20 ms, in a thread, until stopped.

    Args:
        folders: The folders to drop into from the start.
    """

    def __init__(self, folders: list[Path]) -> None:
        self.folders = list(folders)
        self.features: list[dict[str, Any]] = []
        self.files: Counter[Path] = Counter()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drop, name="dropper", daemon=True)
        self._thread.start()

    def add_folder(self, folder: Path) -> None:
        """Drop into ``folder`` too, from the next round."""
        with self._lock:
            self.folders.append(folder)

    def stop(self) -> None:
        """Stop dropping and wait for the last file to be written."""
        self._done.set()
        self._thread.join(10)

    def _drop(self) -> None:
        rng = random.Random(82)
        round_ = 0
        while not self._done.wait(0.02):
            with self._lock:
                folders = list(self.folders)
            for folder in folders:
                doc = write(folder / f"d{round_:05d}.geojson", collection(rng, 3))
                with self._lock:
                    self.features += doc["features"]
                    self.files[folder] += 1
            round_ += 1


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts itself; whatever is left of them is killed at the end."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


def _batches_after(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    names = [e.get("event") for e in daemon.events]
    later = daemon.events[names.index(event) + 1 :]
    return [e for e in later if e.get("event") == "batch_written"]


def test_sighup_mid_ingest_applies_a_valid_config_and_keeps_the_old_one_for_an_invalid_one(
    folders: Folders, tmp_path: Path, listener: NotifyListener, daemons: list[Daemon]
) -> None:
    second = tmp_path / "drop2"
    second.mkdir()
    config_path = tmp_path / "geoingest.toml"
    config: dict[str, object] = {
        "input": [str(folders.drop)],
        "output": str(folders.out),
        "settle_s": 0.2,
        "batch_max_age_s": 0.3,
        "rescan_interval_s": 2,
        "workers": 2,
        "metrics_address": "127.0.0.1:0",
        "log_format": "json",
    }
    write_config(config_path, config)
    daemon = Daemon(["run", "--config", str(config_path)], env=listener.environ())
    daemons.append(daemon)
    daemon.wait_for_event("watching")
    dropper = Dropper([folders.drop])
    time.sleep(1.0)

    # A valid change: smaller batches, and a second input folder.
    config |= {"batch_max_features": 7, "input": [str(folders.drop), str(second)]}
    write_config(config_path, config)
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = daemon.wait_for_event("reloaded")
    assert reloaded["changed"] == ["batch_max_features", "inputs"]
    assert reloaded["needs_restart"] == []
    dropper.add_folder(second)
    time.sleep(1.0)

    # An invalid change is refused as a whole, naming the key; the daemon carries on.
    write_config(config_path, config | {"settle_s": "soon"})
    daemon.proc.send_signal(signal.SIGHUP)
    rejected = daemon.wait_for_event("reload_rejected")
    assert rejected["key"] == "settle_s"
    time.sleep(1.0)
    dropper.stop()
    daemon.wait_for(lambda: len(output_features(folders.out)) >= len(dropper.features))

    # The batches since the refused reload still follow the reloaded limit of 7 features.
    later = _batches_after(daemon, "reload_rejected")
    assert later, "nothing was committed after the refused reload"
    assert max(batch["features"] for batch in later) <= 7
    assert _status(daemon.metrics_url, "/readyz") == 200

    # The folder added by the reload is a source of its own in the metrics.
    ingested = (
        f'files_processed_total{{outcome="ingested",source="drop2"}} {dropper.files[second]}.0'
    )
    daemon.wait_for(lambda: ingested in _read(daemon.metrics_url), timeout_s=10)
    assert daemon.stop() == 0

    assert dropper.files[second] > 0
    assert_exactly_once(folders.out, dropper.features)
    assert _keys(listener.messages) == [
        "READY",
        *["RELOADING", "READY"] * 2,
        "STOPPING",
    ]
