"""The geoingest daemon as a child process: start it, follow its logs, scrape it, stop it.

The daemon writes JSON log lines to stdout. A reader thread drains them all
(so the daemon never blocks on a full pipe), keeps a copy in a log file, and
picks out what the benchmark needs: the metrics address from ``started`` and
the running total of features from ``batch_written``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import IO

from oneshot import kill_session, tail
from proctree import Periodic


class DaemonError(RuntimeError):
    """The daemon did not start, or stopped when it should not have."""


class LogReader(threading.Thread):
    """Reads the daemon's JSON log lines and keeps the figures the benchmark needs.

    Args:
        stream: The daemon's stdout.
        copy: A file that receives every line as read.
    """

    def __init__(self, stream: IO[bytes], copy: IO[bytes]) -> None:
        super().__init__(name="daemon-log-reader", daemon=True)
        self.stream = stream
        self.copy = copy
        self.started = threading.Event()
        self.metrics_address: str | None = None
        self.batches = 0
        self.features_committed = 0
        self.events: Counter[str] = Counter()
        self.levels: Counter[str] = Counter()

    def run(self) -> None:
        """Read lines until the daemon closes its stdout."""
        for line in self.stream:
            self.copy.write(line)
            self._take(line)
        self.copy.flush()

    def _take(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        event = str(record.get("event", ""))
        self.events[event] += 1
        self.levels[str(record.get("level", ""))] += 1
        if event == "batch_written":
            self.batches += 1
            self.features_committed += int(record.get("features", 0))
        elif event == "started":
            self.metrics_address = record.get("metrics_address")
            self.started.set()


class Daemon:
    """One ``geoingest run`` process.

    Args:
        command: The full command line.
        folder: Where its log files go.
    """

    def __init__(self, command: list[str], folder: Path) -> None:
        self.command = command
        self.stdout_log = folder / "stdout.log"
        self.stderr_log = folder / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: LogReader | None = None
        self._files: list[IO[bytes]] = []
        self.stopped = False

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self._running().pid

    def start(self, timeout_s: float) -> str:
        """Start the daemon and return its metrics address once it logs ``started``.

        Raises:
            DaemonError: It exited first, or did not log ``started`` in time.
        """
        copy, err = self.stdout_log.open("wb"), self.stderr_log.open("wb")
        self._files = [copy, err]
        process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )
        self.process = process
        if process.stdout is None:
            raise DaemonError("the daemon's stdout is not a pipe")
        self.reader = LogReader(process.stdout, copy)
        self.reader.start()
        return self._await_started(timeout_s)

    def _await_started(self, timeout_s: float) -> str:
        reader, deadline = self._reader(), time.monotonic() + timeout_s
        while not reader.started.wait(0.05):
            if self._running().poll() is not None:
                raise DaemonError(f"the daemon exited early: {self.error_tail()}")
            if time.monotonic() > deadline:
                raise DaemonError(f"no 'started' event within {timeout_s:.0f} s")
        if not reader.metrics_address:
            raise DaemonError("the 'started' event carries no metrics_address")
        return reader.metrics_address

    def wait_ready(self, address: str, timeout_s: float) -> bool:
        """Poll ``/readyz`` until it answers 200; return False if it never does in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._running().poll() is not None:
                raise DaemonError(f"the daemon exited early: {self.error_tail()}")
            if http_get(f"http://{address}/readyz")[0] == 200:
                return True
            time.sleep(0.05)
        return False

    def is_running(self) -> bool:
        """Whether the daemon process is still alive."""
        return self._running().poll() is None

    def terminate(self, timeout_s: float) -> int | None:
        """Send SIGTERM to the daemon and return its exit code, or None if it had to be killed."""
        process, self.stopped = self._running(), True
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_session(process)
            code = None
        self._reader().join(timeout=10)
        for file in self._files:
            file.close()
        return code

    def error_tail(self) -> str:
        """Return the last lines the daemon wrote to stderr, or to stdout if stderr is empty."""
        return tail(self.stderr_log) or tail(self.stdout_log)

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise DaemonError("the daemon was not started")
        return self.process

    def _reader(self) -> LogReader:
        if self.reader is None:
            raise DaemonError("the daemon was not started")
        return self.reader


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """Return the status and body of a GET, with status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return 0, b""


def metric_value(exposition: bytes, name: str) -> float | None:
    """Return the value of an unlabelled sample in Prometheus text format.

    >>> metric_value(b"# HELP x y\\nprocess_open_fds 12.0\\n", "process_open_fds")
    12.0
    """
    prefix = name.encode() + b" "
    for line in exposition.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :].split()[0])
    return None


class FdScraper(Periodic):
    """Scrapes ``process_open_fds`` from ``/metrics`` and keeps the first and highest values.

    Args:
        address: The metrics ``HOST:PORT``.
        interval_s: Seconds between scrapes.
    """

    def __init__(self, address: str, interval_s: float = 0.25) -> None:
        super().__init__(interval_s, name="fd-scraper")
        self.url = f"http://{address}/metrics"
        self.first: float | None = None
        self.peak: float | None = None
        self.scrapes = 0
        self.failures = 0

    def tick(self) -> None:
        """Scrape once; an unanswered scrape is counted, not raised."""
        status, body = http_get(self.url)
        value = metric_value(body, "process_open_fds") if status == 200 else None
        if value is None:
            self.failures += 1
            return
        self.scrapes += 1
        self.first = value if self.first is None else self.first
        self.peak = value if self.peak is None else max(self.peak, value)


class BatchWatcher(Periodic):
    """Notes the moment each committed batch file first appears in the output folder.

    Args:
        folder: The daemon's output folder.
        interval_s: Seconds between looks, which bounds how late a commit is seen.
    """

    def __init__(self, folder: Path, interval_s: float = 0.02) -> None:
        super().__init__(interval_s, name="batch-watcher")
        self.folder = folder
        self.seen_at: dict[str, float] = {}

    def tick(self) -> None:
        """List the folder once and time-stamp batch files not seen before."""
        now = time.time()
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith("batch-") and entry.name not in self.seen_at:
                    self.seen_at[entry.name] = now
