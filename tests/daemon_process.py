"""A real ``geoingest`` process started for a test, with its JSON log collected."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any


class Daemon:
    """A running ``geoingest`` process with its log lines collected."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process; closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geoingest", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line.decode(errors="replace")}
            with self._lock:
                self.events.append(event)

    def find(self, name: str) -> list[dict[str, Any]]:
        """Log events with this name so far."""
        with self._lock:
            return [e for e in self.events if e.get("event") == name]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Wait until ``predicate`` holds, failing with the log tail when it does not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None and not predicate():
                break
            time.sleep(0.05)
        raise AssertionError(f"condition not met; exit={self.proc.poll()} log tail={self.tail()}")

    def wait_for_event(self, name: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait for the first log event with this name."""
        self.wait_for(lambda: bool(self.find(name)), timeout_s)
        return self.find(name)[0]

    @property
    def metrics_url(self) -> str:
        """The /metrics address the daemon listens on."""
        address = self.wait_for_event("started")["metrics_address"]
        return f"http://{address}/metrics"

    def stop(self, timeout_s: float = 60.0) -> int:
        """Send SIGTERM and wait for the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 60.0) -> int:
        """Wait for the process to exit and return its exit code."""
        code = self.proc.wait(timeout_s)
        self._reader.join(30)
        return code

    def tail(self, n: int = 15) -> str:
        """The last log lines, for assertion messages."""
        with self._lock:
            lines = [json.dumps(e) for e in self.events[-n:]]
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")[-2000:]
        return "\n".join(lines) + ("\nstderr: " + err if err else "")

    def kill(self) -> None:
        """Kill the whole process group, workers included."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        """Kill what is left and release the pipes."""
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # orphaned workers, if any
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
